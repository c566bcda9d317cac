"""The listener against real clients (smtplib, swaks, and a raw socket for what
those will not send): every advertised extension, the reply codes of issue 3,
the open-relay suite, SMTP smuggling and bare line endings, NUL and 8-bit
bytes, mail loops, line and recipient limits, SMTPUTF8 and CHUNKING (BDAT).
What was stored is checked in PostgreSQL. Bounded: a few dozen messages.
"""
import smtplib
import subprocess

import pytest
from listener_harness import RawSmtp, sql
from pipeline import Pipeline

# The functions below run in file order on one listener: the open-relay suite
# checks that nothing was stored before it, and the last that every stored
# message is RECEIVED.


@pytest.fixture(scope="module")
def p():
    with Pipeline(ipv6=True) as p:
        p.add_domain()
        p.add_mailbox("alice")
        p.add_mailbox("bob")
        p.add_alias("both", f"alice@{p.domain}", f"bob@{p.domain}")
        p.start("wsmtp")
        yield p


def code_of(port, *commands):
    """The reply code to the last command, each sent in turn after EHLO."""
    c = RawSmtp(port)
    c.reply()
    c.cmd("EHLO client.example.net")
    result = None
    for command in commands:
        result = c.cmd(command)
    c.close()
    return result


def stored_bodies(p):
    rows = sql(p, "SELECT m.id, m.state, encode(string_agg(b.data, ''::bytea ORDER BY b.seq), 'hex') "
                  "FROM messages m JOIN body_chunks b ON b.message_id = m.id GROUP BY m.id ORDER BY m.id")
    return [(r[0], r[1], bytes.fromhex(r[2]).decode("latin-1")) for r in rows]


def test_ehlo_advertises_every_extension_but_auth_and_starttls(p):
    with smtplib.SMTP("127.0.0.1", p.port, timeout=20) as s:
        code, _ = s.ehlo("client.example.net")
        assert code == 250, "EHLO 250"
        for ext in ("pipelining", "size", "8bitmime", "enhancedstatuscodes", "smtputf8", "chunking"):
            assert s.has_extn(ext), f"EHLO advertises {ext}"
        assert not s.has_extn("auth"), "no AUTH without TLS"
        assert not s.has_extn("starttls"), "no STARTTLS without a certificate"


def test_reply_codes(p):
    with smtplib.SMTP("127.0.0.1", p.port, timeout=20) as s:
        s.ehlo("client.example.net")
        assert s.docmd("VRFY", "alice")[0] == 252, "VRFY 252"
        assert s.docmd("EXPN", "staff")[0] == 502, "EXPN refused"
        assert s.docmd("FROB")[0] == 500, "unknown 500"
        assert s.docmd("DATA")[0] == 503, "DATA first 503"
        assert s.docmd("MAIL", "FROM:<a@@b>")[0] == 501, "bad syntax 501"
        code, text = s.docmd("MAIL", "FROM:<a@client.example> FROB=1")
        assert code == 555 and text.startswith(b"5.5.4"), "unknown param 555 5.5.4"
        code, text = s.docmd("MAIL", "FROM:<a@client.example> SIZE=999999999999")
        assert code == 552 and text.startswith(b"5.3.4"), "SIZE over limit 552 5.3.4"
        code, text = s.docmd("NOOP " + "x" * 600)
        assert code == 500 and text.startswith(b"5.5.2"), "command line over 512: 500 5.5.2"
        assert s.noop()[0] == 250, "session continues after long line"


def test_commands_are_case_insensitive_and_the_101st_recipient_gets_452(p):
    with smtplib.SMTP("127.0.0.1", p.port, timeout=20) as s:
        s.ehlo("client.example.net")
        assert s.docmd("mAiL", "FROM:<a@client.example>")[0] == 250, "case-insensitive commands"
        for i in range(100):
            assert s.docmd("RCPT", f"TO:<alice@{p.domain}>")[0] == 250, f"recipient {i}"
        code, text = s.docmd("RCPT", f"TO:<bob@{p.domain}>")
        assert code == 452 and text.startswith(b"4.5.3"), "101st recipient 452 4.5.3"


def test_helo_works(p):
    with smtplib.SMTP("127.0.0.1", p.port, timeout=20) as s:
        s.helo("old.client.example")
        assert s.docmd("MAIL", "FROM:<a@client.example>")[0] == 250, "HELO works"


# {d} is the local domain.
RELAY_FORMS = ["<someone@remote.example>", "<user%remote.example@{d}>", "<\"user@remote.example\"@{d}>",
               "<@{d}:user@remote.example>", "<remote.example!user@{d}>", "<user@[127.0.0.1]>",
               "<user@[IPv6:::1]>", "<USER%REMOTE.EXAMPLE@{D}>"]


@pytest.mark.parametrize("form", RELAY_FORMS)
def test_relay_is_refused(p, form):
    rcpt = form.format(d=p.domain, D=p.domain.upper())
    code, lines = code_of(p.port, "MAIL FROM:<spammer@remote.example>", f"RCPT TO:{rcpt}")
    assert code == 554 and "5.7.1" in lines[0], f"relay refused for {rcpt}: {lines}"


def test_unknown_local_user_gets_550_5_1_1(p):
    code, lines = code_of(p.port, "MAIL FROM:<x@remote.example>", f"RCPT TO:<nobody@{p.domain}>")
    assert code == 550 and "5.1.1" in lines[0], f"unknown local user 550 5.1.1: {lines}"


def test_source_route_to_a_local_user_is_accepted_and_ignored(p):
    code, _ = code_of(p.port, "MAIL FROM:<x@remote.example>", f"RCPT TO:<@other.example:alice@{p.domain}>")
    assert code == 250, "source route to a local user accepted and ignored"


def test_alias_is_a_known_recipient(p):
    code, _ = code_of(p.port, "MAIL FROM:<>", f"RCPT TO:<both@{p.domain}>")
    assert code == 250, "alias is a known recipient"


def test_quoted_local_part_of_a_user_is_accepted(p):
    code, _ = code_of(p.port, "MAIL FROM:<>", f"RCPT TO:<\"alice\"@{p.domain}>")
    assert code == 250, "quoted local part of a user"


def test_nothing_stored_by_the_relay_suite(p):
    assert int(sql(p, "SELECT count(*) FROM messages")[0][0]) == 0, "nothing stored by the relay suite"


def test_smtp_smuggling_and_bare_line_ends(p):
    before = int(sql(p, "SELECT count(*) FROM messages")[0][0])
    c = RawSmtp(p.port)
    c.reply()
    smuggled = (f"EHLO x\r\nMAIL FROM:<a@client.example>\r\nRCPT TO:<alice@{p.domain}>\r\nDATA\r\n"
                "Subject: smuggle\r\n\r\nfirst\n.\r\nMAIL FROM:<evil@client.example>\r\n"
                f"RCPT TO:<bob@{p.domain}>\r\nDATA\r\nSubject: smuggled\r\n\r\n"
                "x\r.\r\ny\n.\nz\r\n.\r\n")
    c.send(smuggled)
    codes = [r[0] for r in c.replies(5)]
    assert codes == [250, 250, 250, 354, 250], f"one transaction: {codes}"
    c.send("NOOP\r\n")
    assert c.reply()[0] == 250, "no replies for smuggled commands"
    c.close()
    rows = sql(p, "SELECT count(*) FROM messages")
    assert int(rows[0][0]) == before + 1, "exactly one message stored"
    body = stored_bodies(p)[-1][2]
    assert "\r\n.\r\nMAIL FROM:<evil@client.example>\r\n" in body, "the smuggled part is content"
    assert "x\r\n.\r\ny\r\n.\r\nz\r\n" in body, "bare CR and bare LF stored as CRLF"
    assert "\n" not in body.replace("\r\n", ""), "no bare LF stored"
    assert "\r" not in body.replace("\r\n", ""), "no bare CR stored"


def data_session(p, mail_from="MAIL FROM:<a@client.example>"):
    """A raw session after EHLO, MAIL, RCPT and DATA."""
    c = RawSmtp(p.port)
    c.reply()
    c.cmd("EHLO x")
    c.send(f"{mail_from}\r\nRCPT TO:<alice@{p.domain}>\r\nDATA\r\n")
    c.replies(3)
    return c


def test_nul_and_8bit_bytes_are_accepted(p):
    c = data_session(p, "MAIL FROM:<a@client.example> BODY=8BITMIME")
    c.send(b"Subject: nul\r\n\r\nA\x00B \xff\xfe\x80 \xc3\xbc\r\n.\r\n")
    assert c.reply()[0] == 250, "NUL and 8-bit bytes accepted"
    c.close()


def test_mail_loop_gets_554_5_4_6(p):
    c = data_session(p)
    c.send("".join(f"Received: from hop{i}\r\n" for i in range(51)) + "\r\nloop\r\n.\r\n")
    code, lines = c.reply()
    assert code == 554 and "5.4.6" in lines[0], f"mail loop 554 5.4.6: {lines}"
    c.close()


def test_line_over_1000_octets_is_refused_and_the_session_continues(p):
    c = data_session(p)
    c.send("Subject: long\r\n\r\n" + "y" * 999 + "\r\n.\r\n")
    code, lines = c.reply()
    assert code == 500 and "5.5.2" in lines[0], f"line over 1000 octets refused: {lines}"
    assert c.cmd("NOOP")[0] == 250, "session continues"
    c.close()


def test_smtputf8(p):
    with smtplib.SMTP("127.0.0.1", p.port, timeout=20) as s:
        s.ehlo("x")
        msg = "Subject: Grüße\r\n\r\nUTF-8 body ü\r\n".encode()
        refused = s.sendmail("jürgen@client.example", [f"alice@{p.domain}"], msg, mail_options=["SMTPUTF8"])
        assert refused == {}, "SMTPUTF8 message accepted"
        code, text = s.docmd("MAIL", "FROM:<jürgen@client.example>")
        assert code == 553 and text.startswith(b"5.6.7"), "UTF-8 address without SMTPUTF8: 553 5.6.7"
    rows = sql(p, "SELECT envelope_from FROM messages WHERE envelope_from LIKE 'j%rgen@client.example'")
    assert len(rows) == 1, "UTF-8 envelope stored"


def test_chunking_bdat(p):
    c = RawSmtp(p.port)
    c.reply()
    c.cmd("EHLO x")
    part1 = b"Subject: chunks\r\n\r\nfirst\r"
    part2 = b"\nsecond\n.\r\nlast"
    c.send(f"MAIL FROM:<a@client.example>\r\nRCPT TO:<bob@{p.domain}>\r\n".encode() +
           b"BDAT %d\r\n" % len(part1) + part1 + b"BDAT %d LAST\r\n" % len(part2) + part2)
    codes = [r for r in c.replies(4)]
    assert [r[0] for r in codes] == [250, 250, 250, 250], f"BDAT pipelined: {codes}"
    assert "queued as" in codes[3][1][0], "BDAT LAST queues the message"
    assert c.cmd("DATA")[0] == 503, "DATA without a transaction"
    c.send(f"MAIL FROM:<a@client.example>\r\nRCPT TO:<bob@{p.domain}>\r\nBDAT 3\r\nabcDATA\r\n")
    codes = [r[0] for r in c.replies(4)]
    assert codes == [250, 250, 250, 503], f"DATA after BDAT: {codes}"
    assert c.cmd("RSET")[0] == 250, "RSET after BDAT"
    c.close()
    body = [r for r in stored_bodies(p) if "Subject: chunks" in r[2]]
    assert len(body) == 1 and body[0][2].endswith("Subject: chunks\r\n\r\nfirst\r\nsecond\r\n.\r\nlast\r\n"), \
        f"BDAT body stored exactly: {body!r}"


def test_pipelined_replies_come_in_order(p):
    c = RawSmtp(p.port)
    c.reply()
    c.send(f"EHLO x\r\nMAIL FROM:<a@client.example>\r\nRCPT TO:<alice@{p.domain}>\r\nRCPT TO:<nobody@{p.domain}>\r\n"
           f"RCPT TO:<bob@{p.domain}>\r\nDATA\r\nSubject: pipelined\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    codes = [r[0] for r in c.replies(8)]
    assert codes == [250, 250, 250, 550, 250, 354, 250, 221], f"pipelined replies in order: {codes}"
    assert c.closed(), "QUIT closes"


@pytest.mark.parametrize("extra", [[], ["--pipeline"], ["--protocol", "ESMTP"]], ids=lambda e: " ".join(e) or "plain")
def test_swaks_delivers(p, extra):
    r = subprocess.run(["swaks", "--server", f"127.0.0.1:{p.port}", "--from", "s@client.example",
                        "--to", f"alice@{p.domain}", "--helo", "swaks.example", "--timeout", "20", *extra],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    assert r.returncode == 0 and "queued as" in r.stdout, f"swaks {extra}: rc={r.returncode}\n{r.stdout[-800:]}"


def test_swaks_relay_attempt_is_refused(p):
    r = subprocess.run(["swaks", "--server", f"127.0.0.1:{p.port}", "--from", "s@client.example",
                        "--to", "victim@remote.example", "--timeout", "20"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    assert r.returncode != 0 and "554 5.7.1" in r.stdout, "swaks relay attempt refused"


def test_ipv6(p):
    """The same port on IPv6 loopback: mail is accepted with the client's IPv6
    address recorded and traced (RFC 5321 §4.1.3 IPv6 address literal), and
    relaying is refused there as on IPv4."""
    with smtplib.SMTP("::1", p.port, timeout=30) as s:
        code, _ = s.ehlo("[IPv6:::1]")
        assert code == 250, "EHLO with an IPv6 address literal over IPv6"
        assert s.docmd("MAIL", "FROM:<v6@client.example>")[0] == 250, "MAIL over IPv6"
        assert s.docmd("RCPT", "TO:<friend@remote.example>")[0] == 554, "relay over IPv6 refused (554)"
        assert s.docmd("RCPT", f"TO:<alice@{p.domain}>")[0] == 250, "local RCPT over IPv6"
        code, _ = s.data(b"Subject: over IPv6\r\n\r\nsix\r\n")
        assert code == 250, "DATA over IPv6"
    rows = sql(p, "SELECT host(client_addr), client_helo FROM messages WHERE envelope_from = 'v6@client.example'")
    assert rows == [["::1", "[IPv6:::1]"]], f"client address and HELO recorded: {rows}"
    body = [b for _, _, b in stored_bodies(p) if "Subject: over IPv6" in b]
    assert body and "IPv6:::1" in body[0].split("\r\n\r\n")[0], f"Received: names the IPv6 client: {body[:1]}"


def test_every_stored_message_is_received(p):
    states = sql(p, "SELECT count(*) FROM messages WHERE state <> 1")
    assert int(states[0][0]) == 0, "every stored message is RECEIVED (nothing left in state 0)"

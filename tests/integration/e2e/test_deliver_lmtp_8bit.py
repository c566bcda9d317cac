"""8-bit mail over LMTP (RFC 2033, RFC 6152 §3), with the real daemons.

The LMTP servers are Postfix's smtp-sink speaking LMTP (-L), one with -8 (no
8BITMIME in its LHLO reply) and one without. Each message goes to two LMTP
recipients in one transaction.
- lmtp_eightbit = convert (the default), server without 8BITMIME: the server
  gets the message 7-bit clean, without BODY=8BITMIME, quoted-printable, and
  its body decodes back byte for byte to the body that was sent.
- the same policy, server with 8BITMIME: BODY=8BITMIME and the body unchanged.
- lmtp_eightbit = bounce, server without 8BITMIME: nothing reaches the server,
  both recipients bounce with 5.6.3 and the sender gets one DSN saying so;
  wdeliver logs the refusal with msg=<id>.
Bounded: 3 messages, one wdeliver restart per phase, seconds.
"""
import os
import quopri
import re
import signal

import pytest
from deliver_harness import Pipeline, queue_counts, set_section, sql, wait_until
from deliver_relays import SmtpSink

# The phases run in file order on one pipeline: each one's DONE count includes
# the phases before.
USERS = ("l1", "l2")
# CRLF lines with 8-bit text, '=' and trailing whitespace (both need QP escapes),
# a line far past 76 characters (soft breaks) and a leading dot.
BODY = ("Grüße aus Köln — ½ € ✓\r\nnaïve café, ÆØÅ æøå, ΑΒΓ, привет, 日本語\r\n"
        "=equals= and trailing space \r\ntab at the end\t\r\n" + "ü" * 300 + "\r\n.leading dot\r\nend\r\n")


def message(subject):
    return (f"From: sender@example.test\r\nSubject: {subject}\r\nMessage-ID: <{subject}@t>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n" + BODY).encode()


def dumped(sink, subject):
    """(envelope part of the dump, message as received) of the one dump with `subject`.
    smtp-sink writes each received line with a bare LF; every line on the wire
    ended with CRLF (wdeliver repairs line ends), so CRLF restores the wire form."""
    found = []
    for name in os.listdir(sink.dump_dir):
        with open(os.path.join(sink.dump_dir, name), "rb") as f:
            raw = f.read()
        head, _, rest = raw.partition(b"\nReceived: ")
        if re.search(rb"(?m)^Subject: " + subject.encode() + rb"\r?$", rest):
            message = b"Received: " + rest[:-1]  # smtp-sink adds an empty line of its own
            assert b"\r" not in message, f"{name}: the dump format changed"
            found.append((head, message.replace(b"\n", b"\r\n")))
    assert len(found) == 1, f"{subject}: {len(found)} transactions at the LMTP server"
    return found[0]


def body_of(raw):
    return raw.split(b"\r\n\r\n", 1)[1]


def check_envelope(p, head, body_8bit):
    rcpts = re.findall(rb"(?m)^X-Rcpt-Args: <([^>]*)>", head)
    assert sorted(r.decode() for r in rcpts) == [f"{u}@{p.domain}" for u in USERS], head
    assert (b"BODY=8BITMIME" in head) == body_8bit, head


def restart_deliver(p, **keys):
    p.kill("wdeliver", signal.SIGTERM)
    set_section(p, "deliver", transports="maildir, lmtp", retry_base="1s", retry_max="2s",
                relay_connect_timeout="3s", relay_command_timeout="10s", **keys)
    p.start("wdeliver")


def send(p, subject):
    with p.smtp() as s:
        s.sendmail(f"sender@{p.domain}", [f"{u}@{p.domain}" for u in USERS], message(subject),
                   mail_options=["BODY=8BITMIME"])


def latest_results(p):
    """'status last_error' of the LMTP deliveries of the newest message, by recipient."""
    return sql(p, "SELECT string_agg(status || ' ' || coalesce(last_error, ''), '|' ORDER BY recipient) "
                  "FROM deliveries WHERE transport = 'lmtp' AND message_id = "
                  "(SELECT max(message_id) FROM deliveries WHERE transport = 'lmtp')").split("|")


@pytest.fixture(scope="module")
def env():
    with Pipeline(lease_time="20s") as p:
        seven = SmtpSink(p.root, "seven", "-L", "-8")
        eight = SmtpSink(p.root, "eight", "-L")
        try:
            p.add_domain()
            p.add_mailbox("sender")  # a Maildir mailbox: receives the DSN
            for u in USERS:
                # Each phase points wdeliver's lmtp_server at another sink, which overrides this.
                p.ctl("mailbox", "add", f"{u}@{p.domain}", "--transport", "lmtp", "--lmtp", f"127.0.0.1:{seven.port}")
            for name in ("wsmtp", "wroute", "wreaper"):
                p.start(name)
            yield p, seven, eight
        finally:
            seven.stop()
            eight.stop()


@pytest.fixture(scope="module")
def converted(env):
    """convert (the default) for a server without 8BITMIME: the dump and the results."""
    p, seven, eight = env
    restart_deliver(p, lmtp_server=f"127.0.0.1:{seven.port}")
    send(p, "converted")
    wait_until(lambda: queue_counts(p)["DONE"] == 1, 30, interval=0.2, what="the converted message DONE")
    head, raw = dumped(seven, "converted")
    return head, raw, latest_results(p)


def test_convert_sends_7bit_without_body_8bitmime(env, converted):
    head, raw, _ = converted
    check_envelope(env[0], head, body_8bit=False)
    assert all(b < 0x80 for b in raw), "8-bit bytes reached the LMTP server without 8BITMIME"


def test_convert_uses_quoted_printable_that_decodes_to_the_original_body(converted):
    raw = converted[1]
    assert b"\r\nContent-Transfer-Encoding: quoted-printable\r\n" in raw, raw.decode()
    assert b"Content-Transfer-Encoding: 8bit" not in raw
    assert max(len(line) for line in body_of(raw).split(b"\r\n")) <= 76
    decoded = quopri.decodestring(body_of(raw))
    assert decoded == BODY.encode(), f"decoded body differs:\n{decoded!r}\n{BODY.encode()!r}"


def test_convert_delivers_to_both_recipients_and_logs_the_conversion(env, converted):
    results = converted[2]
    assert len(results) == 2 and all(r.startswith("delivered ") for r in results), results
    assert re.search(r"msg=\d+ converted to 7 bit for LMTP server 127\.0\.0\.1:\d+", env[0].log("wdeliver"))


def test_server_with_8bitmime_gets_the_body_unchanged_declared_8bit(env, converted):
    p, seven, eight = env
    restart_deliver(p, lmtp_server=f"127.0.0.1:{eight.port}")
    send(p, "unchanged")
    wait_until(lambda: queue_counts(p)["DONE"] == 2, 30, interval=0.2, what="the unchanged message DONE")
    head, raw = dumped(eight, "unchanged")
    check_envelope(p, head, body_8bit=True)
    assert body_of(raw) == BODY.encode(), "the 8BITMIME server did not get the body unchanged"
    results = latest_results(p)
    assert len(results) == 2 and all(r.startswith("delivered ") for r in results), results
    assert b"Content-Transfer-Encoding: 8bit\r\n" in raw


@pytest.fixture(scope="module")
def refused(env, converted):
    """bounce for a server without 8BITMIME: the results and the sender's DSNs."""
    p, seven, eight = env
    wait_until(lambda: queue_counts(p)["DONE"] == 2, 30, interval=0.2, what="the earlier phases DONE")
    restart_deliver(p, lmtp_server=f"127.0.0.1:{seven.port}", lmtp_eightbit="bounce")
    send(p, "refused")
    wait_until(lambda: queue_counts(p)["DONE"] == 4, 30, interval=0.2, what="the refused message and its DSN DONE")
    dsns = []
    for path in p.maildir_files("sender"):
        with open(path, "rb") as f:
            text = f.read().decode(errors="replace")
        if "report-type=delivery-status" in text:
            dsns.append(text)
    return latest_results(p), dsns


def test_bounce_policy_sends_nothing_and_bounces_both_recipients_with_5_6_3(env, refused):
    p, seven, eight = env
    assert len(os.listdir(seven.dump_dir)) == 1, "the bounce policy let a message through"
    results = refused[0]
    assert len(results) == 2 and all(r.startswith("bounced 5.6.3 LMTP server 127.0.0.1:") and
                                     "does not support 8BITMIME" in r for r in results), results


def test_bounce_policy_gives_the_sender_one_dsn_and_logs_the_refusal(env, refused):
    dsns = refused[1]
    assert len(dsns) == 1, f"{len(dsns)} DSNs for the sender"
    assert "Message-ID: <refused@t>" in dsns[0]
    assert re.findall(r"(?m)^Status: (\S+)", dsns[0]) == ["5.6.3", "5.6.3"], dsns[0]
    assert re.search(r"msg=\d+ 8-bit content refused for every recipient: 5\.6\.3 ", env[0].log("wdeliver"))

"""Milters in wsmtp (issue 18), against the scripted fake milter
(tests/harness/fake_milter.py): the stages in order with their macros
(SETSYMLIST honoured; AUTH and STARTTLS macros), each verdict at each stage
and the reply the client sees while the session goes on, discard, accept,
shutdown, quarantine (held, shown, delivered once released), every
end-of-message change as delivered and as `wsmtpctl show` shows it, the body
replaced, SMFIP_SKIP, the no-reply and no-stage steps, HDR_LEADSPC, body
chunks of at most 64 KiB that add up to what was sent, 250 only after the
end-of-message verdict, a stalled milter that holds only its session, a
100 MiB message with the listener's memory bounded, and two milters in order
(one over a Unix socket). Refused and discarded mail never reaches state 1.
Failures of milters (timeouts, garbage, unreachable) are test_milter_failures.py.
"""
import json
import socket
import threading
import time

import pytest
from fake_milter import (ALL_ACTIONS, HDR_LEADSPC, NOBODY, NOHDRS, NOHELO, NR_BODY, NR_CONN, NR_DATA, NR_EOH,
                         NR_HDR, NR_HELO, NR_MAIL, NR_RCPT, SKIP, Accept, AddHeader, AddRcpt, AddRcptPar,
                         ChangeHeader, ChgFrom, ConnFail, Continue, DelRcpt, Discard, InsertHeader, Quarantine,
                         ReplBody, Reject, ReplyCode, Script, Shutdown, Skip, Stall, Tempfail)
from listener_harness import RawSmtp, client_tls_context
from milter_e2e import (AUTH_PASSWORD, AUTH_USER, DOMAIN, MilterPipeline, headers_of, message, queue_id, send_ok,
                        transaction)

ALICE, BOB, CAROL, DAVE = (f"{u}@{DOMAIN}" for u in ("alice", "bob", "carol", "dave"))
REJECTED_CMD = (550, "5.7.1 Command rejected")
REJECTED_CONTENT = (550, "5.7.1 Message content rejected")
TEMPFAILED = (451, "4.7.1 Service unavailable - try again later")


@pytest.fixture(scope="module")
def mp(tmp_path_factory):
    mp = MilterPipeline(str(tmp_path_factory.mktemp("wsmtp-milter-")), fake_names=("f1",), unix_fakes=("f2",))
    try:
        yield mp
    finally:
        mp.close()


@pytest.fixture
def one(mp):
    """wsmtp with the one milter f1; returns (pipeline, f1)."""
    mp.use(mp.fakes["f1"].spec)
    return mp, mp.fakes["f1"]


@pytest.fixture
def two(mp):
    """wsmtp with f1, then f2 over a Unix socket."""
    mp.use(f"{mp.fakes['f1'].spec}, {mp.fakes['f2'].spec}")
    return mp, mp.fakes["f1"], mp.fakes["f2"]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def bare(address):
    return address.strip("<>")


# --- stages and macros ------------------------------------------------------------------------------


def test_stages_arrive_in_order_with_their_macros(one):
    mp, f1 = one
    sender = "stages@client.example"
    body = "first line\r\n.leading dot\r\n" + "b" * 500 + "\r\n"
    with mp.smtp("stages.client.example") as s:
        client_port = s.sock.getsockname()[1]
        r = transaction(s, sender, [ALICE], message("stages", body, "X-Extra:  two spaces\r\n"))
    assert r["end"][0] == 250, r
    qid = queue_id(r["end"][1])
    session = f1.session_with(helo="stages.client.example").wait_ended()
    assert not f1.errors, f1.errors
    assert session.offered[0] == 6, f"protocol version offered {session.offered}"
    assert session.connect == {"hostname": "[127.0.0.1]", "family": "4", "port": client_port,
                               "address": "127.0.0.1"}, session.connect
    connect = session.macros.get("connect", {})
    assert connect.get("j") == "mx.example.test", connect
    assert "[127.0.0.1]" in connect.get("_", ""), connect
    assert connect.get("{daemon_name}") == "wsmtp", connect
    # No reverse DNS: the client is "unknown", as Postfix names a client without a verified name.
    assert connect.get("{client_addr}") == "127.0.0.1" and connect.get("{client_name}") == "unknown", connect
    assert connect.get("{client_port}") == str(client_port), connect
    assert connect.get("v"), f"v (the MTA's version) missing: {connect}"
    assert not session.macros.get("helo", {}).get("{tls_version}"), "TLS macros without TLS"
    m = session.messages[0]
    assert m.mail[0] == f"<{sender}>" and [r[0] for r in m.rcpts] == [f"<{ALICE}>"], (m.mail, m.rcpts)
    assert bare(m.macros["mail"].get("{mail_addr}", "")) == sender, m.macros["mail"]
    assert not m.macros["mail"].get("{auth_authen}") and not m.macros["mail"].get("{auth_type}"), \
        f"AUTH macros for an unauthenticated client: {m.macros['mail']}"
    assert bare(m.rcpt_macros[0].get("{rcpt_addr}", "")) == ALICE, m.rcpt_macros
    for stage in ("data", "eoh", "eom"):
        assert m.macros.get(stage, {}).get("i") == qid, f"macro i at {stage}: {m.macros.get(stage)}, 250 said {qid}"
    n_headers = len(m.headers)
    assert m.stages == ["mail", "rcpt", "data"] + ["header"] * n_headers + ["eoh", "body", "eom"], m.stages
    assert m.headers[0][0] == "Received" and qid in m.headers[0][1], f"our Received: first: {m.headers[:1]}"
    # Without HDR_LEADSPC the one space after the colon is not part of the value.
    assert m.headers[1:] == [("From", "<someone@client.example>"), ("Subject", "stages"), ("X-Extra", " two spaces")], \
        m.headers
    assert bytes(m.body) == body.encode() and m.chunks == [len(body)], (bytes(m.body), m.chunks)
    assert m.end == "eom" and session.end == "quit", (m.end, session.end, session.commands)
    mp.delivered("alice", "Subject: stages")


def test_tls_and_auth_macros(one):
    mp, f1 = one
    with mp.smtp("tls.client.example") as s:
        s.starttls(context=client_tls_context())
        s.ehlo("tls.client.example")
        s.login(AUTH_USER, AUTH_PASSWORD)
        r = transaction(s, "sam@client.example", [ALICE], message("tls and auth"))
    assert r["end"][0] == 250, r
    session = f1.session_with(helo="tls.client.example")
    helo = session.macros["helo"]
    assert helo.get("{tls_version}", "").startswith("TLSv1."), f"helo macros after STARTTLS: {helo}"
    assert helo.get("{cipher}") and helo.get("{cipher_bits}", "").isdigit(), helo
    mail = session.messages[0].macros["mail"]
    assert mail.get("{auth_type}") in ("PLAIN", "LOGIN") and mail.get("{auth_authen}") == AUTH_USER, mail


def test_setsymlist_limits_the_macros(one):
    mp, f1 = one
    f1.set_script(Script(macros={"connect": "{client_addr}", "mail": "{mail_addr} i", "eom": "i"}))
    qid = send_ok(mp, "symlist.client.example", "symlist@client.example", [ALICE], message("symlist"))
    m = f1.session_with(helo="symlist.client.example").wait_ended()
    assert set(m.macros["connect"]) == {"{client_addr}"}, m.macros["connect"]
    assert set(m.messages[0].macros["mail"]) <= {"{mail_addr}", "i"}, m.messages[0].macros["mail"]
    assert m.messages[0].macros["eom"] == {"i": qid}, m.messages[0].macros["eom"]
    # A stage without a list gets all of its macros.
    assert m.messages[0].macros["data"].get("i") == qid, m.messages[0].macros.get("data")


# --- verdicts ----------------------------------------------------------------------------------------

VERDICTS = [
    ("reject", Reject(), REJECTED_CMD, REJECTED_CONTENT),
    ("tempfail", Tempfail(), TEMPFAILED, TEMPFAILED),
    ("reply5", ReplyCode("554 5.7.0 refused by the fake"), (554, "5.7.0 refused by the fake"),
     (554, "5.7.0 refused by the fake")),
    ("reply4", ReplyCode("450 4.7.2 later, says the fake"), (450, "4.7.2 later, says the fake"),
     (450, "4.7.2 later, says the fake")),
]


def only_for(sender, action):
    """A reply for the messages of sender only; continue for the rest."""
    return lambda s, payload: action if s.message and s.message.sender == f"<{sender}>" else Continue()


@pytest.mark.parametrize("stage", ["mail", "rcpt", "data", "header", "eoh", "body", "eom"])
@pytest.mark.parametrize("name,action,command_reply,content_reply", VERDICTS, ids=[v[0] for v in VERDICTS])
def test_verdict_at_a_stage_and_the_session_goes_on(one, stage, name, action, command_reply, content_reply):
    mp, f1 = one
    bad, good = f"bad-{stage}-{name}@client.example", f"good-{stage}-{name}@client.example"
    if stage == "rcpt":  # only bob is refused: a refused recipient, the message goes on to alice
        f1.set_script(Script(replies={"rcpt": lambda s, args: action if args[0] == f"<{BOB}>" else Continue()}))
    else:
        f1.set_script(Script(replies={stage: only_for(bad, action)}))
    with mp.smtp("verdict.client.example") as s:
        r = transaction(s, bad, [ALICE, BOB] if stage == "rcpt" else [ALICE], message(f"{stage} {name}"))
        if stage == "mail":
            assert r["mail"] == command_reply, f"MAIL: {r}"
        elif stage == "rcpt":
            assert r["rcpt"][0][0] == 250 and r["rcpt"][1] == command_reply, f"RCPTs: {r}"
            assert r["end"][0] == 250, f"the message goes on to alice: {r}"
            assert mp.show(queue_id(r["end"][1]))["envelope_recipients"] == [ALICE]
        elif stage == "data":
            assert r["data"] == command_reply, f"DATA: {r}"
        else:
            assert r["end"] == content_reply, f"end of data after a {name} at {stage}: {r}"
        assert s.rset()[0] == 250 and s.noop()[0] == 250, "RSET and NOOP after the refusal"
        r2 = transaction(s, good, [ALICE], message(f"{stage} {name} good"))
        assert r2["end"] and r2["end"][0] == 250, f"the next message of the session: {r2}"
    if stage != "rcpt":
        assert mp.queued_rows(bad) == 0, f"a message refused at {stage} reached the queue"
    if stage == "data":
        session = f1.session_with(sender=bad).wait_ended()
        assert session.messages[0].end == "abort", f"SMFIC_ABORT after the refused DATA: {session.commands}"


@pytest.mark.parametrize("stage", ["connect", "helo"])
@pytest.mark.parametrize("name,action,command_reply,content_reply", VERDICTS, ids=[v[0] for v in VERDICTS])
def test_verdict_at_connect_or_helo_refuses_every_transaction(one, stage, name, action, command_reply, content_reply):
    mp, f1 = one
    f1.set_script(Script(replies={stage: action}))
    c = RawSmtp(mp.p.port)
    assert c.reply()[0] == 220, "the greeting comes at once"
    code, lines = c.cmd("EHLO refused.client.example")
    if stage == "helo" and code != 250:
        # Refused at EHLO itself (Postfix instead answers 250 and refuses MAIL).
        assert (code, lines[-1][4:]) == command_reply, lines
        assert c.cmd("HELO refused.client.example")[0] == code, "a second HELO refused the same way"
    else:
        assert code == 250, f"EHLO still works after a {name} at {stage}: {lines}"
    for _ in range(2):
        code, lines = c.cmd("MAIL FROM:<refused@client.example>")
        assert (code, lines[-1][4:]) == command_reply, f"MAIL after a {name} at {stage}: {lines}"
        assert c.cmd("NOOP")[0] == 250 and c.cmd("RSET")[0] == 250, "NOOP and RSET still work"
    assert c.cmd("QUIT")[0] == 221
    c.close()
    assert mp.queued_rows("refused@client.example") == 0


@pytest.mark.parametrize("stage", ["body", "eom"])
def test_discard_answers_250_and_nothing_is_queued_or_delivered(one, stage):
    mp, f1 = one
    sender = f"discard-{stage}@client.example"
    f1.set_script(Script(replies={stage: only_for(sender, Discard())}))
    qid = send_ok(mp, "discard.client.example", sender, [ALICE], message(f"discarded at {stage}"))
    assert mp.queued_rows(sender) == 0, f"discarded message {qid} reached the queue"
    assert mp.p.ctl("show", qid, check=False).returncode != 0 or mp.show(qid)["state"] == 0, \
        f"discarded message {qid} is shown as queued: {mp.show_text(qid)}"
    send_ok(mp, "discard.client.example", "sentinel@client.example", [ALICE], message(f"after discard {stage}"))
    mp.delivered("alice", f"Subject: after discard {stage}")
    assert mp.not_delivered("alice", f"Subject: discarded at {stage}"), "a discarded message was delivered"


def test_accept_at_mail_skips_the_milter_for_that_message_only(one):
    mp, f1 = one
    f1.set_script(Script(replies={"mail": only_for("accepted@client.example", Accept())}))
    with mp.smtp("accept.client.example") as s:
        r1 = transaction(s, "accepted@client.example", [ALICE], message("accepted at mail"))
        r2 = transaction(s, "next@client.example", [ALICE], message("after the accepted one"))
    assert r1["end"][0] == 250 and r2["end"][0] == 250, (r1, r2)
    session = f1.session_with(helo="accept.client.example").wait_ended()
    first, second = session.messages
    assert first.stages == ["mail"], f"the milter was asked more after SMFIR_ACCEPT: {first.stages}"
    assert second.stages[-1] == "eom", f"the next message goes to the milter again: {second.stages}"
    mp.delivered("alice", "Subject: accepted at mail")


def test_accept_at_connect_skips_the_milter_for_the_session(one):
    mp, f1 = one
    f1.set_script(Script(replies={"connect": Accept()}))
    with mp.smtp("accept-connect.client.example") as s:
        port = s.sock.getsockname()[1]
        for i in range(2):
            r = transaction(s, "accept-connect@client.example", [ALICE], message(f"accepted at connect {i}"))
            assert r["end"][0] == 250, r
    session = f1.session_with(port=port).wait_ended()
    assert not session.helo and not session.messages, f"stages after SMFIR_ACCEPT at connect: {session.commands}"
    mp.delivered("alice", "Subject: accepted at connect 1")


def test_a_transaction_ended_by_rset_is_aborted_for_the_milter(one):
    mp, f1 = one
    with mp.smtp("rset.client.example") as s:
        assert s.mail("rset@client.example")[0] == 250 and s.rcpt(ALICE)[0] == 250
        assert s.rset()[0] == 250
        r = transaction(s, "after-rset@client.example", [ALICE], message("after rset"))
    assert r["end"][0] == 250, r
    session = f1.session_with(helo="rset.client.example").wait_ended()
    assert [(m.sender, m.end) for m in session.messages] == [("<rset@client.example>", "abort"),
                                                             ("<after-rset@client.example>", "eom")], \
        session.commands


@pytest.mark.parametrize("action", [Shutdown(), ConnFail()], ids=["shutdown", "connfail"])
def test_shutdown_and_conn_fail_answer_421_and_close(one, action):
    mp, f1 = one
    f1.set_script(Script(replies={"mail": action}))
    c = RawSmtp(mp.p.port)
    c.reply()
    c.cmd("EHLO shutdown.client.example")
    code, lines = c.cmd("MAIL FROM:<shutdown@client.example>")
    assert code == 421 and lines[-1].startswith("421 4.7.0"), lines
    assert c.closed(), "the connection is closed after 421"
    c.close()


# --- end-of-message changes ---------------------------------------------------------------------------


def test_every_change_shows_in_the_delivered_message_and_in_show(one):
    mp, f1 = one
    f1.set_script(Script(eom_mods=[
        AddHeader("X-Added", "added by the milter"),
        InsertHeader(0, "X-Inserted-First", "at index 0"),
        ChangeHeader(1, "Subject", "changed subject"),
        ChangeHeader(2, "X-Dup", "second changed"),
        ChangeHeader(1, "X-Remove-Me", ""),
        ChgFrom("<new-sender@client.example>"),
        AddRcpt(f"<{BOB}>"),
        AddRcptPar(f"<{DAVE}>"),
        DelRcpt(f"<{CAROL}>"),
    ]))
    headers = "X-Dup: one\r\nX-Dup: two\r\nX-Remove-Me: gone\r\nX-Mark: changes\r\n"
    qid = send_ok(mp, "changes.client.example", "old-sender@client.example", [ALICE, CAROL],
                  message("original subject", "the body\r\n", headers))
    shown = mp.show(qid)
    assert shown["sender"] == "new-sender@client.example", f"show: sender {shown['sender']}"
    assert sorted(shown["envelope_recipients"]) == [ALICE, BOB, DAVE], shown["envelope_recipients"]
    for where, msg in [("show", headers_of(shown["headers"]))] + [
            (user, mp.delivered(user, "X-Mark: changes")) for user in ("alice", "bob", "dave")]:
        names = [k for k, _ in msg.items()]
        assert msg["X-Added"] == "added by the milter", f"{where}: {msg.items()}"
        assert msg["X-Inserted-First"] == "at index 0", f"{where}: {names}"
        assert names.index("X-Inserted-First") < names.index("Received"), \
            f"{where}: index 0 is before our Received: {names}"
        assert msg["Subject"] == "changed subject" and msg.get_all("X-Dup") == ["one", "second changed"], \
            f"{where}: {msg.items()}"
        assert "X-Remove-Me" not in msg, f"{where}: a header changed to empty is deleted: {names}"
        if where != "show":
            assert msg["Return-Path"] == "<new-sender@client.example>", f"{where}: {msg['Return-Path']}"
    assert "new-sender@client.example" in mp.show_text(qid)
    assert mp.not_delivered("carol", "X-Mark: changes"), "a deleted recipient got the message"


def test_replaced_body_is_delivered(one):
    mp, f1 = one
    new_body = "the milter's body\r\n" + ("r" * 900 + "\r\n") * 200 + "the end\r\n"  # three SMFIR_REPLBODY packets
    f1.set_script(Script(eom_mods=[ReplBody(new_body)]))
    qid = send_ok(mp, "replbody.client.example", "replbody@client.example", [ALICE],
                  message("replace body", "the client's body\r\n"))
    shown = mp.p.ctl("show", "--body", qid).stdout
    assert "body:\nthe milter's body\n" in shown and "the client's body" not in shown, shown[-400:]
    assert json.loads(mp.p.ctl("--json", "show", "--body", qid).stdout)["body"].startswith("the milter's body\r\nrrr")
    msg = mp.delivered("alice", "Subject: replace body")
    assert msg.get_payload() == new_body.replace("\r\n", "\n") or msg.get_payload() == new_body, \
        f"delivered body: {msg.get_payload()[:200]!r}"


def test_quarantined_message_is_held_shown_and_delivered_once_released(one):
    mp, f1 = one
    f1.set_script(Script(eom_mods=[Quarantine("looks odd to the fake")]))
    qid = send_ok(mp, "quarantine.client.example", "quarantine@client.example", [ALICE], message("quarantined"))
    shown = mp.show(qid)
    assert shown["held"] is True and shown["state"] >= 1, shown
    assert shown["held_reason"] == f"milter {f1.spec}: looks odd to the fake", shown["held_reason"]
    assert f"yes: milter {f1.spec}: looks odd to the fake" in mp.show_text(qid), mp.show_text(qid)
    f1.set_script(Script())  # the sentinel is not quarantined: it shows when held mail would have been delivered
    send_ok(mp, "quarantine.client.example", "sentinel@client.example", [ALICE], message("after quarantine"))
    mp.delivered("alice", "Subject: after quarantine")
    assert mp.not_delivered("alice", "Subject: quarantined"), "a held message was delivered"
    mp.p.ctl("release", qid)
    mp.delivered("alice", "Subject: quarantined")


# --- protocol steps -----------------------------------------------------------------------------------


def big_body(lines):
    return "".join(f"{i:06d} " + "z" * 990 + "\r\n" for i in range(lines))


def test_body_chunks_are_at_most_64_kib_and_add_up(one):
    mp, f1 = one
    body = big_body(300)  # about 300 KB
    send_ok(mp, "chunks.client.example", "chunks@client.example", [ALICE], message("chunks", body))
    m = f1.session_with(helo="chunks.client.example").wait_ended().messages[0]
    assert len(m.chunks) >= 5 and max(m.chunks) <= 65535, f"chunk sizes {m.chunks}"
    assert bytes(m.body) == body.encode(), "the body the milter saw is the body sent, CRLF line ends"


def test_skip_stops_the_body_chunks_and_the_message_is_whole(one):
    mp, f1 = one
    f1.set_script(Script(steps=SKIP, replies={"body": Skip()}, record_body=False))
    # 2 MB: far more than the chain may have written ahead of the milter's
    # answers (Chain::kBackpressure), so a skip that is honoured shows.
    body = big_body(2000)
    send_ok(mp, "skip.client.example", "skip@client.example", [ALICE], message("skipped", body))
    session = f1.session_with(helo="skip.client.example").wait_ended()
    assert session.offered[2] & SKIP, f"SMFIP_SKIP not offered: {session.offered[2]:#x}"
    m = session.messages[0]
    assert m.end == "eom" and m.body_len < len(body) // 2, \
        f"{m.body_len} of {len(body)} body bytes sent after SMFIR_SKIP, in chunks {m.chunks[:20]}"
    msg = mp.delivered("alice", "Subject: skipped")
    assert msg.get_payload().replace("\r\n", "\n") == body.replace("\r\n", "\n"), "the skipped body was delivered whole"


def test_bdat_message_goes_through_the_same_stages(one):
    mp, f1 = one
    body = b"bdat body line\r\n" * 5000
    first = b"Subject: bdat\r\n\r\n" + body[:30000]
    rest = body[30000:]
    c = RawSmtp(mp.p.port)
    c.reply()
    c.cmd("EHLO bdat.client.example")
    c.send(f"MAIL FROM:<bdat@client.example>\r\nRCPT TO:<{ALICE}>\r\n")
    assert [r[0] for r in c.replies(2)] == [250, 250]
    c.send(f"BDAT {len(first)}\r\n".encode() + first)
    assert c.reply()[0] == 250
    c.send(f"BDAT {len(rest)} LAST\r\n".encode() + rest)
    code, lines = c.reply()
    c.close()
    assert code == 250, lines
    m = f1.session_with(helo="bdat.client.example").messages[0]
    assert m.stages[:3] == ["mail", "rcpt", "data"] and m.stages[-1] == "eom", m.stages
    assert ("Subject", "bdat") in m.headers and bytes(m.body) == body, (m.headers, m.body_len, len(body))
    assert m.macros["eom"].get("i") == queue_id(lines[-1]), m.macros["eom"]


def test_no_reply_steps_are_not_waited_for(one):
    mp, f1 = one
    nr = NR_CONN | NR_HELO | NR_MAIL | NR_RCPT | NR_DATA | NR_HDR | NR_EOH | NR_BODY
    # Were the MTA to wait for any of these, the stall would keep it waiting: the fake never answers them.
    f1.set_script(Script(steps=nr, replies={st: Stall() for st in ("connect", "helo", "mail", "rcpt", "data",
                                                                   "header", "eoh", "body")}))
    start = time.time()
    send_ok(mp, "noreply.client.example", "noreply@client.example", [ALICE], message("no reply steps"))
    assert time.time() - start < 10, "the MTA waited for a stage the milter does not answer"
    session = f1.session_with(helo="noreply.client.example").wait_ended()
    assert session.agreed[2] == nr, f"steps agreed {session.agreed[2]:#x}"
    assert session.messages[0].stages[-1] == "eom", session.messages[0].stages


def test_no_stage_steps_are_not_sent(one):
    mp, f1 = one
    f1.set_script(Script(steps=NOHELO | NOHDRS | NOBODY))
    with mp.smtp("nostage.client.example") as s:
        port = s.sock.getsockname()[1]
        r = transaction(s, "nostage@client.example", [ALICE], message("no stages", "body\r\n"))
    assert r["end"][0] == 250, r
    session = f1.session_with(port=port).wait_ended()
    m = session.messages[0]
    assert not session.helo and not m.headers and not m.chunks, \
        f"stages the milter turned off were sent: {session.commands}"
    assert m.stages == ["mail", "rcpt", "data", "eoh", "eom"], m.stages


def test_header_leading_space_is_kept_when_negotiated(one):
    mp, f1 = one
    f1.set_script(Script(steps=HDR_LEADSPC, actions=ALL_ACTIONS))
    send_ok(mp, "leadspc.client.example", "leadspc@client.example", [ALICE],
            message("lead space", headers="X-Tab:\tvalue\r\n"))
    m = f1.session_with(helo="leadspc.client.example").wait_ended().messages[0]
    assert ("Subject", " lead space") in m.headers and ("X-Tab", "\tvalue") in m.headers, m.headers


# --- timing and memory ----------------------------------------------------------------------------------


def test_250_comes_only_after_the_end_of_message_verdict(one):
    mp, f1 = one
    f1.set_script(Script(replies={"eom": Continue().after(2)}))
    c = RawSmtp(mp.p.port)
    c.reply()
    c.cmd("EHLO slow-eom.client.example")
    c.send(f"MAIL FROM:<slow-eom@client.example>\r\nRCPT TO:<{ALICE}>\r\nDATA\r\n")
    assert [r[0] for r in c.replies(3)] == [250, 250, 354]
    c.send(message("slow eom") + ".\r\n")
    start = time.time()
    code, lines = c.reply()
    waited = time.time() - start
    c.close()
    assert code == 250 and waited >= 1.9, f"{lines} after {waited:.2f}s; the milter answered after 2s"


def test_a_stalled_milter_holds_only_its_session(one):
    mp, f1 = one
    f1.set_script(Script(replies={"mail": only_for("stalled@client.example", Stall())}))
    c = RawSmtp(mp.p.port)
    c.reply()
    c.cmd("EHLO stalled.client.example")
    c.send("MAIL FROM:<stalled@client.example>\r\n")
    for i in range(3):
        start = time.time()
        send_ok(mp, "meanwhile.client.example", "meanwhile@client.example", [ALICE], message(f"meanwhile {i}"))
        assert time.time() - start < 10, "another session waited on the stalled milter (its command timeout is 30s)"
    c.sock.settimeout(0.5)
    with pytest.raises(socket.timeout):
        c.reply()  # still waiting on its milter
    c.close()


def test_100_mib_message_through_a_milter_with_bounded_memory(one):
    mp, f1 = one
    f1.set_script(Script(record_body=False))
    pid = mp.p.procs["wsmtp"][-1].pid
    send_ok(mp, "warm.client.example", "warm@client.example", [ALICE], message("warm", big_body(3000)))
    time.sleep(0.5)
    base = peak = rss_kib(pid)
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_kib(pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        c = RawSmtp(mp.p.port, timeout=120)
        c.reply()
        c.cmd("EHLO big.client.example")
        c.send(f"MAIL FROM:<big@client.example>\r\nRCPT TO:<{ALICE}>\r\nDATA\r\n")
        assert [r[0] for r in c.replies(3)] == [250, 250, 354]
        c.send("Subject: big\r\n\r\n")
        line = b"y" * 998 + b"\r\n"
        block, sent = line * 1024, 0
        while sent < 100 * 1024 * 1024:  # the 100 MiB
            c.send(block)
            sent += len(block)
        c.send(b".\r\n")
        code, lines = c.reply()
        c.close()
    finally:
        done.set()
        sampler.join()
    assert code == 250, lines
    m = f1.session_with(helo="big.client.example").messages[0]
    assert m.body_len == sent and max(m.chunks) <= 65535, f"milter saw {m.body_len} of {sent} bytes"
    growth = (peak - base) / 1024
    print(f"100 MiB through a milter: RSS {base} KiB -> peak {peak} KiB, growth {growth:.1f} MiB")
    assert growth < 16, f"the listener's RSS grew {growth:.1f} MiB for a 100 MiB message through a milter"


# --- two milters ------------------------------------------------------------------------------------------


def test_the_first_milters_reject_is_final_and_the_second_is_not_asked(two):
    mp, f1, f2 = two
    f1.set_script(Script(replies={"mail": only_for("first-says-no@client.example", Reject())}))
    with mp.smtp("order.client.example") as s:
        r = transaction(s, "first-says-no@client.example", [ALICE], message("first says no"))
        assert r["mail"] == REJECTED_CMD, r
        assert transaction(s, "fine@client.example", [ALICE], message("fine"))["end"][0] == 250
    second = f2.session_with(helo="order.client.example").wait_ended()
    assert [m.sender for m in second.messages] == ["<fine@client.example>"], \
        "the second milter was asked about MAIL after the first rejected it"


def test_a_reject_at_end_of_message_by_the_first_milter_is_final(two):
    mp, f1, f2 = two
    f1.set_script(Script(replies={"eom": Reject()}))
    with mp.smtp("order-eom.client.example") as s:
        r = transaction(s, "eom-no@client.example", [ALICE], message("eom no"))
    assert r["end"] == REJECTED_CONTENT, r
    second = f2.session_with(helo="order-eom.client.example").wait_ended()
    assert second.messages[0].end != "eom", "the second milter was asked at end of message after the reject"
    assert mp.queued_rows("eom-no@client.example") == 0


def test_changes_of_both_milters_are_applied_in_order(two):
    mp, f1, f2 = two
    f1.set_script(Script(eom_mods=[AddHeader("X-Order", "first"), ChangeHeader(1, "Subject", "by the first")]))
    f2.set_script(Script(eom_mods=[AddHeader("X-Order", "second"), AddRcpt(f"<{BOB}>")]))
    qid = send_ok(mp, "both.client.example", "both@client.example", [ALICE], message("both milters"))
    for user in ("alice", "bob"):
        msg = mp.delivered(user, "X-Order: second")
        assert msg.get_all("X-Order") == ["first", "second"] and msg["Subject"] == "by the first", msg.items()
    assert sorted(mp.show(qid)["envelope_recipients"]) == [ALICE, BOB]
    # Both were asked at every stage; the Unix-socket one too.
    for fake in (f1, f2):
        assert fake.session_with(helo="both.client.example").wait_ended().messages[0].end == "eom"

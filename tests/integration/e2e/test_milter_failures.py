"""Milters that fail, in wsmtp (issue 18): a milter that is unreachable, does
not negotiate in time (connect timeout), stalls at MAIL (command timeout) or at
end of message (content timeout), drops the connection mid-body or answers
garbage gets its default action. tempfail: 451 4.7.1 for that command and every
later MAIL/RCPT/DATA of the session, while RSET, NOOP and QUIT work and nothing
is queued; accept: the milter is left out and the mail delivered; quarantine:
the mail is accepted but held until released. SMFIR_PROGRESS keeps a slow
milter within its timeout. Timeouts here are 1 s (the smallest allowed).
"""
import time

import pytest
from fake_milter import Close, Continue, Garbage, Script, Stall
from listener_harness import RawSmtp
from milter_e2e import DOMAIN, MilterPipeline, message, send_ok

ALICE = f"alice@{DOMAIN}"
TEMPFAILED = "451 4.7.1 Service unavailable - try again later"
SHORT = "connect_timeout = 1s, command_timeout = 1s, content_timeout = 1s"
BIG_BODY = "".join(f"{i:06d} " + "m" * 990 + "\r\n" for i in range(300))  # several body chunks


@pytest.fixture(scope="module")
def mp(tmp_path_factory):
    mp = MilterPipeline(str(tmp_path_factory.mktemp("wsmtp-milter-fail-")))
    try:
        yield mp
    finally:
        mp.close()


def mid_body_close(s, chunk):
    return Close() if len(s.message.chunks) >= 2 else Continue()


# name: (script, where the failure shows: "connect", "mail", "rcpt" or "end" of data)
FAILURES = {
    "connect_timeout": (lambda: Script(negotiate=Stall()), "connect"),
    "command_timeout": (lambda: Script(replies={"mail": Stall()}), "mail"),
    "content_timeout": (lambda: Script(replies={"eom": Stall()}), "end"),
    "dropped_mid_body": (lambda: Script(replies={"body": mid_body_close}), "end"),
    "garbage_reply": (lambda: Script(replies={"rcpt": Garbage()}), "rcpt"),
}


def dialogue(mp, sender, where):
    """One session up to end of data; returns [(command, code, last line)] and
    the open connection. The commands after a failure are still sent."""
    start = time.time()
    c = RawSmtp(mp.p.port)
    code, _ = c.reply()
    assert code == 220 and time.time() - start < 0.9, \
        f"the greeting comes at once, whatever the milter does ({time.time() - start:.2f}s)"
    seen = []
    for cmd in ("EHLO failing.client.example", f"MAIL FROM:<{sender}>", f"RCPT TO:<{ALICE}>", "DATA"):
        code, lines = c.cmd(cmd)
        seen.append((cmd.split()[0], code, lines[-1]))
        if cmd == "DATA" and code == 354:
            c.send(message(f"failing {sender}", BIG_BODY) + ".\r\n")
            code, lines = c.reply()
            seen.append(("end", code, lines[-1]))
    return seen, c


def assert_tempfailed_from(seen, where):
    """Every MAIL/RCPT/DATA from the failure on answered 451 4.7.1 (EHLO may still be 250)."""
    order = ["EHLO", "MAIL", "RCPT", "DATA", "end"]
    first = {"connect": "MAIL", "mail": "MAIL", "rcpt": "RCPT", "end": "end"}[where]
    for cmd, code, line in seen:
        if cmd == "EHLO":
            assert code == 250 or (where == "connect" and line == TEMPFAILED), f"EHLO: {seen}"
        elif order.index(cmd) < order.index(first):
            assert code in (250, 354), f"{cmd} before the failure: {seen}"
        elif cmd == first:
            assert line == TEMPFAILED, f"{cmd} at the failure: {seen}"
        else:
            # After a refused MAIL or RCPT the later commands may be 503 (no transaction), 451, or,
            # for DATA after every RCPT was refused, RFC 5321's 554 "no valid recipients" (as Postfix).
            no_recipients = cmd == "DATA" and where == "rcpt" and line.startswith("554 5.5.1")
            assert line == TEMPFAILED or code == 503 or no_recipients, f"{cmd} after the failure: {seen}"


@pytest.mark.parametrize("kind", list(FAILURES))
def test_tempfail_by_default_and_the_session_goes_on(mp, kind):
    f1 = mp.fakes["f1"]
    mp.use(f"{{ {f1.spec}, {SHORT} }}")
    script, where = FAILURES[kind]
    f1.set_script(script())
    sender = f"fail-{kind}@client.example"
    start = time.time()
    seen, c = dialogue(mp, sender, where)
    assert time.time() - start < 15, f"the {kind} took {time.time() - start:.1f}s with 1s timeouts: {seen}"
    assert_tempfailed_from(seen, where)
    assert c.cmd("RSET")[0] == 250 and c.cmd("NOOP")[0] == 250, "RSET and NOOP after the failure"
    code, lines = c.cmd(f"MAIL FROM:<{sender}>")
    assert lines[-1] == TEMPFAILED, f"a later MAIL of the session is 451 too: {lines}"
    assert c.cmd("QUIT")[0] == 221
    c.close()
    assert mp.queued_rows(sender) == 0, f"a message tempfailed by a milter ({kind}) reached the queue"
    # Only that session: the next one is served (and filtered) normally.
    f1.set_script(Script())
    send_ok(mp, "next.client.example", f"next-{kind}@client.example", [ALICE], message(f"after {kind}"))


def test_progress_keeps_a_slow_milter_within_its_timeout(mp):
    f1 = mp.fakes["f1"]
    mp.use(f"{{ {f1.spec}, {SHORT} }}")
    f1.set_script(Script(replies={"eom": Continue().with_progress(3, 0.6)}))  # 1.8 s in all, 0.6 s apart
    send_ok(mp, "progress.client.example", "progress@client.example", [ALICE], message("progress"))
    mp.delivered("alice", "Subject: progress")


def test_unreachable_milter_tempfails_and_the_session_goes_on(mp):
    mp.use(mp.dead)
    seen, c = dialogue(mp, "unreachable@client.example", "connect")
    assert_tempfailed_from(seen, "connect")
    assert c.cmd("RSET")[0] == 250 and c.cmd("NOOP")[0] == 250 and c.cmd("QUIT")[0] == 221
    c.close()
    assert mp.queued_rows("unreachable@client.example") == 0


def accept_config(mp):
    # The unreachable milter first: with accept it is left out, and f1 still filters.
    return f"{{ {mp.dead}, default_action = accept }}, {{ {mp.fakes['f1'].spec}, default_action = accept, {SHORT} }}"


def test_unreachable_milter_with_accept_is_left_out(mp):
    mp.use(accept_config(mp))
    f1 = mp.fakes["f1"]
    send_ok(mp, "accept-dead.client.example", "accept-dead@client.example", [ALICE], message("dead left out"))
    mp.delivered("alice", "Subject: dead left out")
    assert f1.session_with(helo="accept-dead.client.example").messages[0].end == "eom", "the next milter still asked"


@pytest.mark.parametrize("kind", ["command_timeout", "garbage_at_eom", "dropped_mid_body"])
def test_failing_milter_with_accept_is_left_out_and_the_mail_delivered(mp, kind):
    mp.use(accept_config(mp))
    f1 = mp.fakes["f1"]
    f1.set_script({"command_timeout": Script(replies={"mail": Stall()}),
                   "garbage_at_eom": Script(replies={"eom": Garbage()}),
                   "dropped_mid_body": Script(replies={"body": mid_body_close})}[kind])
    with mp.smtp(f"accept-{kind}.client.example") as s:
        for i in range(2):  # the second message of the session too: the milter stays left out
            s.sendmail(f"accept-{kind}@client.example", [ALICE], message(f"accepted {kind} {i}", BIG_BODY))
    for i in range(2):
        mp.delivered("alice", f"Subject: accepted {kind} {i}")
    session = f1.session_with(helo=f"accept-{kind}.client.example").wait_ended()
    assert len(session.messages) == 1, f"the failed milter was asked again: {session.commands}"


@pytest.mark.parametrize("kind", ["content_timeout", "connect_timeout"])
def test_failing_milter_with_quarantine_holds_the_mail_until_released(mp, kind):
    f1 = mp.fakes["f1"]
    mp.use(f"{{ {f1.spec}, default_action = quarantine, {SHORT} }}")
    f1.set_script(Script(replies={"eom": Stall()}) if kind == "content_timeout" else Script(negotiate=Stall()))
    qid = send_ok(mp, f"quarantine-{kind}.client.example", f"quarantine-{kind}@client.example", [ALICE],
                  message(f"quarantined {kind}"))
    shown = mp.show(qid)
    assert shown["held"] is True and shown["state"] >= 1, f"a message accepted under quarantine: {shown}"
    f1.set_script(Script())
    send_ok(mp, "sentinel.client.example", "sentinel@client.example", [ALICE], message(f"sentinel {kind}"))
    mp.delivered("alice", f"Subject: sentinel {kind}")
    assert mp.not_delivered("alice", f"Subject: quarantined {kind}"), "a held message was delivered"
    mp.p.ctl("release", qid)
    mp.delivered("alice", f"Subject: quarantined {kind}")

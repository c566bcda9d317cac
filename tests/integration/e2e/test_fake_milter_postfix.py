"""The scripted fake milter (tests/harness/fake_milter.py) against a real MTA:
a throwaway Postfix on loopback with smtpd_milters pointing at it. Proves the
fake speaks protocol 6 as Postfix expects, so the milter tests of wsmtp test
wsmtp, not the fake: the negotiation with SETSYMLIST, macros per stage, the
stages in order with the body as sent, a reply code at RCPT that the client
sees, SMFIP_SKIP, no-reply steps, progress, quarantine, end-of-message
changes (headers, sender, recipients, body) that reach the delivered mail,
and the fake's failures (garbage, a connection closed mid-body, a stall) as
failures that Postfix answers with its default action.
"""
import email
import json
import shutil
import smtplib
import subprocess
import tempfile

import pytest
from deliver_postfix import Postfix
from fake_milter import (ADDHDRS, ADDRCPT, CHGBODY, CHGFROM, CHGHDRS, HDR_LEADSPC, NR_HDR, SETSYMLIST, SKIP,
                         AddHeader, AddRcpt, ChangeHeader, ChgFrom, Close, Continue, FakeMilter, Garbage,
                         InsertHeader, Quarantine, ReplBody, ReplyCode, Script, Skip, Stall, Tempfail)
from pipeline import wait_until

DOMAIN = "example.test"


@pytest.fixture(scope="module")
def env():
    root = tempfile.mkdtemp(prefix="wsmtp-fakemilter-postfix-")
    with FakeMilter() as fake:
        postfix = Postfix(root, DOMAIN, ["alice", "bob"],
                          extra=f"smtpd_milters = {fake.spec}\nmilter_default_action = tempfail\n"
                                "milter_command_timeout = 10s\nmilter_content_timeout = 2s\n")
        try:
            yield postfix, fake
        finally:
            postfix.stop()
            shutil.rmtree(root, ignore_errors=True)


def delivered(postfix, user, marker):
    """The message in user's Maildir whose text contains marker, waiting for it."""
    found = []

    def look():
        for path in postfix.maildir_files():
            if f"/{user}/" in path:
                with open(path, "rb") as f:
                    text = f.read()
                if marker.encode() in text:
                    found.append(email.message_from_bytes(text))
                    return True
        return False
    wait_until(look, 30, what=f"a message with {marker!r} for {user} in Postfix's Maildir")
    return found[0]


def test_stages_macros_and_a_reply_code_at_rcpt(env):
    postfix, fake = env
    refuse = ReplyCode("550 5.7.1 the fake says no")
    fake.set_script(Script(
        steps=NR_HDR | HDR_LEADSPC,
        macros={"connect": "j {client_addr}", "eom": "i"},
        replies={"rcpt": lambda s, args: refuse if args[0] == f"<bob@{DOMAIN}>" else Continue()}))
    body = "line one\r\n..dot line\r\n" + "x" * 100 + "\r\n"
    with smtplib.SMTP("127.0.0.1", postfix.port, timeout=30) as c:
        c.ehlo("stages.client.example")
        refused = c.sendmail("s@client.example", [f"alice@{DOMAIN}", f"bob@{DOMAIN}"],
                             f"Subject: stages\r\nX-Two:  spaced\r\n\r\n{body}")
    assert refused == {f"bob@{DOMAIN}": (550, b"5.7.1 the fake says no")}, refused
    s = fake.session_with(helo="stages.client.example").wait_ended()
    assert s.end == "quit" and not fake.errors, (s.end, fake.errors)
    assert s.offered[0] == 6 and s.agreed[2] == NR_HDR | HDR_LEADSPC, (s.offered, s.agreed)
    # SETSYMLIST honoured: only the macros asked for at connect.
    assert set(s.macros["connect"]) == {"j", "{client_addr}"}, s.macros["connect"]
    assert s.macros["connect"]["{client_addr}"] == "127.0.0.1" and s.connect["address"] == "127.0.0.1"
    assert s.connect["family"] == "4" and s.connect["port"] > 0, s.connect
    m = s.messages[0]
    assert m.mail[0] == "<s@client.example>" and [r[0] for r in m.rcpts] == [f"<alice@{DOMAIN}>",
                                                                              f"<bob@{DOMAIN}>"]
    assert m.stages[:3] == ["mail", "rcpt", "rcpt"] and m.stages[-3:] == ["eoh", "body", "eom"], m.stages
    # HDR_LEADSPC: the value exactly as after the colon.
    assert ("Subject", " stages") in m.headers and ("X-Two", "  spaced") in m.headers, m.headers
    assert bytes(m.body) == body.encode(), bytes(m.body)  # smtplib stuffs the dots, the MTA unstuffs them
    assert m.macros["eom"]["i"], m.macros


def test_end_of_message_changes_reach_the_mailbox(env):
    postfix, fake = env
    fake.set_script(Script(
        actions=ADDHDRS | CHGHDRS | CHGBODY | ADDRCPT | CHGFROM | SETSYMLIST,
        eom_mods=[AddHeader("X-Fake-Milter", "added"), ChgFrom("<changed@client.example>"),
                  InsertHeader(0, "X-First", "inserted"),
                  ChangeHeader(1, "Subject", "changed by the fake"), AddRcpt(f"<bob@{DOMAIN}>"),
                  ReplBody("the new body\r\n" + "z" * 70000 + "\r\nend\r\n")]))
    with smtplib.SMTP("127.0.0.1", postfix.port, timeout=30) as c:
        c.ehlo("changes.client.example")
        c.sendmail("s@client.example", [f"alice@{DOMAIN}"], "Subject: original\r\n\r\nold body\r\n")
    for user in ("alice", "bob"):
        m = delivered(postfix, user, "X-Fake-Milter")
        assert m["X-Fake-Milter"] == "added" and m["Subject"] == "changed by the fake", m.items()
        assert m["Return-Path"] == "<changed@client.example>", m.items()
        names = [k for k, _ in m.items()]
        # Index 0 is before the MTA's own Received: (the delivery agent adds Return-Path and Delivered-To above).
        assert m["X-First"] == "inserted" and names.index("X-First") < names.index("Received"), names
        payload = m.get_payload().replace("\r\n", "\n")
        assert payload.startswith("the new body\n") and payload.endswith("\nend\n") and len(payload) > 70000


def test_skip_stops_the_body_chunks(env):
    postfix, fake = env
    fake.set_script(Script(steps=SKIP, replies={"body": Skip()}))
    with smtplib.SMTP("127.0.0.1", postfix.port, timeout=30) as c:
        c.ehlo("skip.client.example")
        c.sendmail("s@client.example", [f"alice@{DOMAIN}"], "Subject: big\r\n\r\n" + ("y" * 998 + "\r\n") * 300)
    s = fake.session_with(helo="skip.client.example").wait_ended()
    m = s.messages[0]
    assert s.agreed[2] & SKIP and len(m.chunks) == 1 and m.end == "eom", (s.agreed, m.chunks)
    delivered(postfix, "alice", "Subject: big")


def test_progress_quarantine_and_tempfail(env):
    postfix, fake = env
    fake.set_script(Script(
        replies={"mail": lambda s, args: Tempfail() if args[0] == "<later@client.example>" else Continue(),
                 "eom": Continue().with_progress(2, 0.3)},
        eom_mods=[Quarantine("held by the fake")]))
    with smtplib.SMTP("127.0.0.1", postfix.port, timeout=30) as c:
        c.ehlo("quarantine.client.example")
        assert c.sendmail("s@client.example", [f"alice@{DOMAIN}"], "Subject: q\r\n\r\nq\r\n") == {}
        code, text = c.docmd("MAIL", "FROM:<later@client.example>")
        assert code == 451 and text.startswith(b"4.7.1"), (code, text)
    queue = subprocess.run(["postqueue", "-c", postfix.etc, "-j"], check=True, stdout=subprocess.PIPE, text=True)
    held = [json.loads(line) for line in queue.stdout.splitlines()]
    assert [q["queue_name"] for q in held] == ["hold"], held


@pytest.mark.parametrize("failure", ["garbage", "close_mid_body", "stall"])
def test_the_fakes_failures_are_failures_to_postfix(env, failure):
    postfix, fake = env
    body = ("f" * 998 + "\r\n") * 200  # several body chunks
    fake.set_script(Script(replies={
        "garbage": {"rcpt": Garbage()},
        "close_mid_body": {"body": lambda s, chunk: Close() if len(s.message.chunks) >= 2 else Continue()},
        "stall": {"eom": Stall()},
    }[failure]))
    with smtplib.SMTP("127.0.0.1", postfix.port, timeout=30) as c:
        c.ehlo(f"{failure}.client.example")
        with pytest.raises(smtplib.SMTPException) as refused:
            c.sendmail("s@client.example", [f"alice@{DOMAIN}"], f"Subject: {failure}\r\n\r\n{body}")
    # milter_default_action = tempfail
    err = refused.value
    code = err.recipients[f"alice@{DOMAIN}"][0] if isinstance(err, smtplib.SMTPRecipientsRefused) else err.smtp_code
    assert code == 451, f"{failure}: {err!r}"

"""Mail to postmaster (RFC 5321 §4.5.1, issue 13): <postmaster@local-domain>
and the bare <Postmaster> (and postmaster@ the listener's hostname) are
accepted from an untrusted client, from the null sender too, without a
postmaster mailbox. With no [router] postmaster the
message is held, with a reason in `wsmtpctl show`, never bounced or lost; once
postmaster is set (as deploy/run's demo does: demo@demo.test) and the message
released, it and later ones arrive in that mailbox's Maildir. A domain's own
postmaster mailbox wins. Bounded: a handful of messages.
"""
import json
import signal

import pytest
from listener_harness import RawSmtp
from pipeline import Pipeline, wait_until

# The functions below run in file order on one pipeline: the held message of the
# first is released once postmaster is configured.


def send(p, sender, recipients, subject):
    """One message over a raw session; every RCPT must get 250."""
    c = RawSmtp(p.port)
    c.reply()
    c.cmd("EHLO untrusted.example")
    assert c.cmd(f"MAIL FROM:<{sender}>")[0] == 250
    for r in recipients:
        code, lines = c.cmd(f"RCPT TO:{r}")
        assert code == 250, f"RCPT TO:{r} -> {lines}"
    assert c.cmd("DATA")[0] == 354
    code, lines = c.cmd(f"Subject: {subject}\r\n\r\nfor the postmaster\r\n.")
    assert code == 250, lines
    c.cmd("QUIT")
    c.close()


def subjects(p, user):
    out = []
    for path in p.maildir_files(user):
        with open(path, "rb") as f:
            out += [line.decode().rstrip("\r") for line in f.read().split(b"\n") if line.startswith(b"Subject:")]
    return sorted(out)


@pytest.fixture(scope="module")
def p():
    with Pipeline(domain="demo.test") as p:
        p.add_domain()
        p.add_mailbox("demo")
        p.ctl("domain", "add", "other.test")
        p.ctl("mailbox", "add", "postmaster@other.test", "--maildir", p.maildir("pm-other"))
        p.start_all()
        yield p


@pytest.fixture(scope="module")
def held(p):
    """Mail to postmaster with no [router] postmaster set: the held messages."""
    send(p, "", ["<postmaster@demo.test>", "<Postmaster>"], "held")
    wait_until(lambda: json.loads(p.ctl("--json", "list", "--held").stdout), 30, what="the message held")
    return json.loads(p.ctl("--json", "list", "--held").stdout)


def test_without_postmaster_set_the_message_is_held_with_its_reason(p, held):
    assert len(held) == 1, held
    shown = p.ctl("show", str(held[0]["id"])).stdout
    assert "no [router] postmaster set" in shown, shown
    assert "held in state RECEIVED: mail to postmaster" in p.log("wroute"), p.log("wroute")[-2000:]
    assert "postmaster is not set" in p.log("wroute")


def test_a_domains_own_postmaster_mailbox_wins(p):
    send(p, "someone@client.example", ["<POSTMASTER@other.test>"], "own mailbox")
    wait_until(lambda: len(p.maildir_files("pm-other")) == 1, 30, what="delivery to postmaster@other.test")


def test_once_configured_the_released_and_later_messages_arrive(p, held):
    # Configure postmaster as the demo does, restart wroute, release.
    text = open(p.config).read().replace("[router]\n", "[router]\npostmaster = demo@demo.test\n", 1)
    with open(p.config, "w") as f:
        f.write(text)
    p.kill("wroute", signal.SIGTERM)
    p.start("wroute")
    assert "released 1 of 1" in p.ctl("release", str(held[0]["id"])).stdout
    send(p, "", ["<PostMaster@Demo.Test>"], "null sender")
    # The bare form, and postmaster@ the listener's own name (no local domain).
    send(p, "someone@client.example", ["<postmaster>", "<postmaster@mx.example.test>"], "bare")
    wait_until(lambda: len(p.maildir_files("demo")) == 3, 30, what="three messages in the demo Maildir")
    assert subjects(p, "demo") == ["Subject: bare", "Subject: held", "Subject: null sender"], subjects(p, "demo")
    assert not json.loads(p.ctl("--json", "list", "--held").stdout)


def test_nothing_is_bounced(p):
    assert "bounce" not in p.log("wroute"), p.log("wroute")[-2000:]

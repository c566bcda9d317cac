"""wsmtpctl bounce, --json and mailbox transports as an operator uses them, on the
real daemons: a held message not routed yet and a held deferred one are bounced
and the sender's DSN leaves at once (it reaches the sender's Maildir, no release
needed); the null sender gets none and the output says so; an action that changes
nothing exits 1 with the reason per message; --json output of a message with raw
8-bit header bytes (0xE9, a lone 0xFF) is valid JSON for `python3 -m json.tool`
and keeps the exact bytes in base64; mailbox add --transport mbox and lmtp.
"""
import base64
import json
import os
import subprocess
import sys

import pytest
from pipeline import Pipeline, wait_until

# The functions below run in file order on one pipeline, as an operator works:
# the listener alone first, then the router and deliverer.


def ctl_raw(p, *args):
    cmd = [os.path.join(p.bindir, "ctl/wsmtpctl"), "--config", p.config, *args]
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def ctl_json(p, *args):
    """Runs wsmtpctl --json ARGS; checks the output with python3 -m json.tool; returns it parsed."""
    cmd = [os.path.join(p.bindir, "ctl/wsmtpctl"), "--config", p.config, "--json", *args]
    raw = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    tool = subprocess.run([sys.executable, "-m", "json.tool"], input=raw.stdout, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
    assert tool.returncode == 0, (args, raw.stdout[:500], tool.stderr)
    return raw.returncode, json.loads(raw.stdout)


def send(p, sender, rcpt, message):
    """Sends one message and returns its queue id, from the 250 reply."""
    with p.smtp() as s:
        s.ehlo()
        assert s.mail(sender, ["BODY=8BITMIME"])[0] == 250
        assert s.rcpt(rcpt)[0] == 250
        code, text = s.data(message)
        assert code == 250, (code, text)
        return int(text.decode().rsplit("queued as ", 1)[1].split()[0])


def state(p, msg_id):
    return ctl_json(p, "show", str(msg_id))[1]["state_name"]


def dsn_files(p, user):
    out = []
    for path in p.maildir_files(user):
        with open(path, "rb") as f:
            data = f.read()
        if b"Undelivered Mail Returned to Sender" in data:
            out.append(data)
    return out


@pytest.fixture(scope="module")
def p():
    with Pipeline() as p:
        d = p.domain
        p.add_domain()
        p.add_mailbox("alice")
        p.ctl("mailbox", "add", f"broken@{d}", "--maildir", "/dev/null/Maildir")  # deliveries are deferred
        p.start("wsmtp")
        yield p


@pytest.fixture(scope="module")
def received(p):
    """Two messages in RECEIVED: one with raw 8-bit header bytes, one to give up on."""
    d = p.domain
    raw = b"Subject: caf\xe9 \xff end\r\nMessage-ID: <eight@t>\r\n\r\nbody\r\n"
    eight = send(p, f"alice@{d}", f"alice@{d}", raw)
    give_up = send(p, f"alice@{d}", f"alice@{d}", b"Subject: give-up\r\n\r\nbody\r\n")
    return eight, give_up


def test_json_of_8bit_headers_is_valid_and_keeps_the_exact_bytes(p, received):
    eight, give_up = received
    msgs = json.loads(p.ctl("--json", "list").stdout)
    assert sorted(m["id"] for m in msgs) == sorted([eight, give_up]), msgs
    rc, shown = ctl_json(p, "show", str(eight))
    assert rc == 0
    exact = base64.b64decode(shown["headers_base64"])
    assert b"Subject: caf\xe9 \xff end\r\n" in exact, exact
    assert "Subject: caf\ufffd \ufffd end" in shown["headers"], shown["headers"]


@pytest.mark.parametrize("args", [["list"], ["queue"], ["reset", "--state", "ROUTING", "--dry-run"],
                                  ["domain", "list"], ["mailbox", "list"], ["mailbox", "show", "alice@example.test"],
                                  ["db", "status"]], ids=lambda a: " ".join(a))
def test_json_output_is_valid_for_json_tool(p, received, args):
    assert ctl_json(p, *args)[0] == 0, args


def test_hold_before_routing_and_an_action_that_changes_nothing_exits_1(p, received):
    give_up = received[1]
    # Held before routing (as routing failures leave it).
    rc, held = ctl_json(p, "hold", str(give_up), "--reason", "routing keeps failing")
    assert rc == 0 and held["changed"] == 1, held
    r = ctl_raw(p, "hold", str(give_up))
    assert r.returncode == 1 and "already held" in r.stdout and "nothing changed" in r.stderr, (r.stdout, r.stderr)
    r = ctl_raw(p, "retry", str(give_up))
    assert r.returncode == 1 and "held: release it first" in r.stdout, r.stdout


def test_bounce_of_a_held_received_message_makes_it_done_with_a_dsn(p, received):
    give_up = received[1]
    r = ctl_raw(p, "bounce", str(give_up))
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "RECEIVED (held): bounced 1 envelope recipient; DSN msg=" in r.stdout, r.stdout
    assert state(p, give_up) == "DONE"
    dsn = [m for m in json.loads(p.ctl("--json", "list", "--sender", "<>").stdout)]
    assert len(dsn) == 1 and dsn[0]["state_name"] == "RECEIVED", dsn


def test_actions_on_done_or_missing_messages_exit_1_with_the_reason(p, received):
    eight, give_up = received
    r = ctl_raw(p, "bounce", str(give_up), "424242")
    assert r.returncode == 1 and "already DONE" in r.stdout and "msg=424242 unchanged: no such message" in r.stdout, \
        r.stdout
    rc, report = ctl_json(p, "bounce", "424242")
    assert rc == 1 and report["changed"] == 0 and report["messages"][0]["detail"] == "no such message", report
    r = ctl_raw(p, "release", str(eight))
    assert r.returncode == 1 and "not held (RECEIVED)" in r.stdout, r.stdout


def test_the_dsn_reaches_the_senders_maildir_without_a_release(p, received):
    p.start("wroute")
    p.start("wdeliver")
    wait_until(lambda: len(dsn_files(p, "alice")) == 1, 30, what="the DSN in alice's Maildir")
    assert b"give-up" in dsn_files(p, "alice")[0] and b"delivery cancelled by the postmaster" in \
        dsn_files(p, "alice")[0]


def test_bounce_of_held_deferred_messages_sends_the_dsn_now_and_none_to_the_null_sender(p, received):
    d = p.domain
    # A deferred message held in ROUTED: the DSN leaves now, not after a release.
    send(p, f"alice@{d}", f"broken@{d}", b"Subject: deferred-one\r\n\r\nbody\r\n")
    send(p, "", f"broken@{d}", b"Subject: from-null\r\n\r\nbody\r\n")
    wait_until(lambda: len(json.loads(p.ctl("--json", "list", "--deferred").stdout)) == 2, 30,
               what="two deferred messages")
    deferred = [m["id"] for m in json.loads(p.ctl("--json", "list", "--deferred").stdout)]
    p.ctl("hold", *map(str, deferred))
    wait_until(lambda: all(state(p, i) == "ROUTED" for i in deferred), 30, what="held in ROUTED")
    r = ctl_raw(p, "bounce", *map(str, deferred))
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "ROUTED (held): bounced 1 pending delivery; DSN msg=" in r.stdout, r.stdout
    assert "no DSN: the sender is <>" in r.stdout, r.stdout
    assert all(state(p, i) == "DONE" for i in deferred)
    wait_until(lambda: len(dsn_files(p, "alice")) == 2, 30, what="the second DSN, without a release")
    assert any(b"deferred-one" in f for f in dsn_files(p, "alice"))
    r = ctl_raw(p, "retry", str(deferred[0]))
    assert r.returncode == 1 and "already DONE" in r.stdout, r.stdout


def test_reset_that_changes_nothing_says_why(p):
    r = ctl_raw(p, "reset", "--state", "DELIVERING", "--older-than", "1d")
    assert r.returncode == 1 and "nothing reset" in r.stderr, r.stderr


def test_mailbox_add_for_each_transport(p):
    d = p.domain
    p.ctl("mailbox", "add", f"spool@{d}", "--transport", "mbox", "--mbox", os.path.join(p.root, "spool"))
    p.ctl("mailbox", "add", f"dove@{d}", "--transport", "lmtp", "--lmtp", "127.0.0.1:24")
    p.ctl("mailbox", "add", f"sock@{d}", "--transport", "lmtp", "--lmtp", "unix:/run/dovecot/lmtp")
    rc, shown = ctl_json(p, "mailbox", "show", f"dove@{d}")
    assert shown["transport"] == "lmtp" and shown["destination"] == "127.0.0.1:24", shown
    rc, listed = ctl_json(p, "mailbox", "list")
    assert {m["address"]: (m["transport"], m["destination"]) for m in listed}[f"sock@{d}"] == \
        ("lmtp", "/run/dovecot/lmtp"), listed


@pytest.mark.parametrize("args, error", [
    (["--transport", "lmtp", "--lmtp", "localhost"], "expected HOST:PORT"),
    (["--transport", "mbox"], "needs --mbox"),
    (["--transport", "smtp"], "expected maildir, mbox or lmtp"),
    (["--transport", "mbox", "--mbox", "/x", "--quota", "1M"], "Maildir mailboxes only")])
def test_mailbox_add_refuses_bad_transport_options_precisely(p, args, error):
    r = ctl_raw(p, "mailbox", "add", f"new@{p.domain}", *args)
    assert r.returncode == 2 and error in r.stderr, (args, r.returncode, r.stderr)


def test_mailbox_add_of_an_existing_address_names_its_transport(p):
    r = ctl_raw(p, "mailbox", "add", f"dove@{p.domain}", "--maildir", "/var/mail/dove")
    assert r.returncode == 1 and "already exists with lmtp 127.0.0.1:24" in r.stderr, r.stderr

"""wsmtpctl as an operator uses it, against the real daemons on a throwaway
PostgreSQL: help on every command, precise errors and exit codes, queue/list/show,
hold/release, deferred mail with retry, delete, reset and reap.
"""
import json
import os
import subprocess

import pytest
from pipeline import Pipeline, wait_until

# From test_messages_are_received_and_shown on, the functions run in file order
# on one pipeline, as an operator works through the queue.
COMMANDS = [[], ["db"], ["db", "migrate"], ["db", "status"], ["queue"], ["list"], ["show"], ["reset"], ["hold"],
            ["release"], ["delete"], ["retry"], ["bounce"], ["reap"], ["domain"], ["domain", "add"],
            ["mailbox", "add"], ["alias", "add"], ["user", "add"], ["mailing-list", "add"], ["catchall", "set"],
            ["forward", "add"], ["autoreply", "set"], ["relay", "add"]]


def ctl_raw(p, *args, config=True):
    cmd = [os.path.join(p.bindir, "ctl/wsmtpctl")] + (["--config", p.config] if config else []) + list(args)
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def send(p, sender, rcpt, subject):
    """Sends one message and returns its queue id, from the 250 reply."""
    with p.smtp() as s:
        s.ehlo()
        assert s.mail(sender)[0] == 250
        assert s.rcpt(rcpt)[0] == 250
        code, text = s.data(f"Subject: {subject}\r\nMessage-ID: <{subject}@t>\r\n\r\nbody\r\n")
        assert code == 250, (code, text)
        return int(text.decode().rsplit("queued as ", 1)[1].split()[0])


def listed(p, *flags):
    return json.loads(p.ctl("--json", "list", *flags).stdout)


@pytest.fixture(scope="module")
def p():
    with Pipeline() as p:
        yield p


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a) or "wsmtpctl")
def test_help_on_every_command(p, args):
    r = ctl_raw(p, *args, "--help")
    assert r.returncode == 0 and "Usage" in r.stdout, (args, r.returncode, r.stderr)


def test_bad_config_names_file_and_line_and_exits_2(p):
    bad = os.path.join(p.root, "bad.conf")
    with open(bad, "w") as f:
        f.write("[database]\nconninfo = host=/nonexistent\n[queue]\nlease_time = soon\n")
    r = subprocess.run([os.path.join(p.bindir, "ctl/wsmtpctl"), "--config", bad, "reap", "--once"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert r.returncode == 2 and "bad.conf:4: [queue] lease_time" in r.stderr, (r.returncode, r.stderr)


def test_no_database_exits_3(p):
    nodb = os.path.join(p.root, "nodb.conf")
    with open(nodb, "w") as f:
        f.write("[database]\nconninfo = host=127.0.0.1 port=1 connect_timeout=2\n")
    r = subprocess.run([os.path.join(p.bindir, "ctl/wsmtpctl"), "--config", nodb, "queue"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert r.returncode == 3 and "cannot reach the database" in r.stderr, (r.returncode, r.stderr)


@pytest.mark.parametrize("args, code, error", [
    (["show", "424242"], 1, "no message 424242"),
    (["list", "--state", "SIDEWAYS"], 2, "--state SIDEWAYS"),
    (["hold"], 2, "no messages selected"),
    (["mailbox", "add", "x@nowhere.test", "--maildir", "/tmp/x"], 1, "not a local domain"),
    (["reset", "--state", "DONE"], 2, "only ROUTING")], ids=lambda a: a if isinstance(a, str) else None)
def test_precise_errors_and_exit_codes(p, args, code, error):
    r = ctl_raw(p, *args)
    assert r.returncode == code and error in r.stderr, r.stderr


def test_bad_arguments_exit_2(p):
    assert ctl_raw(p, "frobnicate").returncode == 2  # bad arguments: 2, as the README says


@pytest.fixture(scope="module")
def m1(p):
    """Four messages received (the listener alone runs); the first one's id."""
    p.add_domain()
    p.add_mailbox("alice")
    # A mailbox whose Maildir cannot be created: its deliveries are deferred.
    p.ctl("mailbox", "add", f"broken@{p.domain}", "--maildir", "/dev/null/Maildir")
    p.start("wsmtp")
    m1 = send(p, "flood@spam.example", f"alice@{p.domain}", "m1")
    send(p, "flood@spam.example", f"alice@{p.domain}", "m2")
    send(p, "friend@ok.example", f"alice@{p.domain}", "m3")
    send(p, "friend@ok.example", f"broken@{p.domain}", "m4")
    return m1


def test_messages_are_received_and_shown(p, m1):
    msgs = listed(p, "--state", "RECEIVED")
    assert len(msgs) == 4 and all(m["state_name"] == "RECEIVED" for m in msgs), msgs
    shown = json.loads(p.ctl("--json", "show", str(m1)).stdout)
    assert shown["envelope_recipients"] == [f"alice@{p.domain}"], shown
    assert "Subject: m1" in shown["headers"] and "Received: from" in shown["headers"], shown["headers"]
    text = p.ctl("show", str(m1)).stdout
    assert "sender" in text and "flood@spam.example" in text and "recipient" in text, text


def test_queue_names_the_top_sender(p, m1):
    q = json.loads(p.ctl("--json", "queue").stdout)
    assert q["top_senders"][0] == {"sender": "flood@spam.example", "count": 2}, q


def test_held_mail_waits_and_follows_once_released(p, m1):
    # Hold the flood, route the rest; release and it follows.
    out = p.ctl("hold", "--sender", "flood@spam.example", "--reason", "looks like spam").stdout
    assert "held 2 of 2" in out, out
    p.start("wroute")
    p.start("wdeliver")
    wait_until(lambda: len(listed(p, "--state", "DONE")) == 1, 20, what="m3 delivered")
    assert len(listed(p, "--held")) == 2
    assert all(m["state_name"] == "RECEIVED" for m in listed(p, "--held"))
    assert "released 2 of 2" in p.ctl("release", "--sender", "flood@spam.example").stdout
    wait_until(lambda: len(listed(p, "--state", "DONE")) == 3, 20, what="released mail delivered")
    assert len(p.maildir_files("alice")) == 3


@pytest.fixture(scope="module")
def deferred(p, m1):
    """The broken mailbox's message, once deferred."""
    wait_until(lambda: len(listed(p, "--deferred")) == 1, 20, what="a deferred message")
    return listed(p, "--deferred")[0]


def test_deferred_message_shows_its_error(p, deferred):
    detail = json.loads(p.ctl("--json", "show", str(deferred["id"])).stdout)
    assert detail["deliveries"][0]["status"] == "pending" and "Not a directory" in detail["deliveries"][0]["last_error"], detail
    assert json.loads(p.ctl("--json", "queue").stdout)["deferred"] == 1


def test_retry_makes_a_deferred_message_due_now(p, deferred):
    # retry changes nothing while a deliverer holds the message (it sets the next
    # attempt itself), and says so with exit 1; between attempts it makes it due.
    def retried():
        r = ctl_raw(p, "retry", str(deferred["id"]))
        assert r.returncode == 0 or "being delivered now" in r.stdout, (r.returncode, r.stdout, r.stderr)
        return r.returncode == 0 and "retrying deliveries 1 of 1" in r.stdout
    wait_until(retried, 20, what="retry of the deferred message")
    wait_until(lambda: json.loads(p.ctl("--json", "show", str(deferred["id"])).stdout)["deliveries"][0]["attempts"] >= 2,
               20, what="retried delivery")


def test_delete_removes_a_message_once(p, deferred):
    assert "deleted 1 of 1" in p.ctl("delete", str(deferred["id"])).stdout
    assert ctl_raw(p, "show", str(deferred["id"])).returncode == 1
    r = ctl_raw(p, "delete", str(deferred["id"]))
    assert r.returncode == 1 and "no such message" in r.stdout, (r.returncode, r.stdout)


def test_reset_dry_run_and_reap(p, m1):
    out = p.ctl("reset", "--state", "ROUTING", "--dry-run").stdout
    assert "0 message(s)" not in out  # dry run prints no total
    reap = json.loads(p.ctl("--json", "reap", "--once").stdout)
    assert reap["routing_reset"] == 0 and reap["aborted_deleted"] == 0, reap


def test_users(p, m1):
    d = p.domain
    assert "added user" in p.ctl("user", "add", f"alice@{d}", stdin="s3cret-pass\n").stdout
    assert p.ctl("user", "list").stdout.split() == [f"alice@{d}"]
    assert ctl_raw(p, "user", "add", f"alice@{d}").returncode == 1  # exists; no password on empty stdin either
    r = subprocess.run([os.path.join(p.bindir, "ctl/wsmtpctl"), "--config", p.config, "user", "passwd", "nobody@x"],
                       input="x\n", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert r.returncode == 1 and "no user" in r.stderr, r.stderr


def test_mailing_lists(p, m1):
    d = p.domain
    p.ctl("mailing-list", "add", f"team@{d}", "--owner", f"alice@{d}", "--policy", "anyone")
    p.ctl("mailing-list", "add-member", f"team@{d}", f"alice@{d}", f"bob@{d}")
    assert p.ctl("mailing-list", "members", f"team@{d}").stdout.split() == [f"alice@{d}", f"bob@{d}"]
    assert "policy=anyone" in p.ctl("mailing-list", "list").stdout
    r = ctl_raw(p, "mailing-list", "add", f"x@{d}", "--owner", f"alice@{d}", "--policy", "everyone")
    assert r.returncode == 2 and "--policy everyone" in r.stderr, r.stderr


def test_catchall_forward_autoreply_and_relays(p, m1):
    d = p.domain
    p.ctl("catchall", "set", d, f"alice@{d}")
    assert f"{d} -> alice@{d}" in p.ctl("catchall", "list").stdout
    p.ctl("forward", "add", f"alice@{d}", "alice@elsewhere.example", "--keep-copy")
    assert "(keep copy)" in p.ctl("forward", "list").stdout
    p.ctl("autoreply", "set", f"alice@{d}", "--subject", "Away", stdin="Back on Monday.\n")
    assert '"Away"' in p.ctl("autoreply", "list").stdout
    p.ctl("relay", "pool-set", "outbound", "--tls", "required")
    p.ctl("relay", "add", "outbound", "relay1.example", "--weight", "3")
    listing = p.ctl("relay", "list").stdout
    assert "pool outbound tls=required" in listing and "relay1.example:25 weight=3" in listing, listing


def test_every_rule_table_list_has_json(p, m1):
    d = p.domain
    assert json.loads(p.ctl("--json", "user", "list").stdout) == [f"alice@{d}"]
    assert json.loads(p.ctl("--json", "mailing-list", "members", f"team@{d}").stdout) == [f"alice@{d}", f"bob@{d}"]
    assert json.loads(p.ctl("--json", "mailing-list", "list").stdout)[0]["policy"] == "anyone"
    assert json.loads(p.ctl("--json", "catchall", "list").stdout) == [{"domain": d, "target": f"alice@{d}"}]
    assert json.loads(p.ctl("--json", "forward", "list").stdout)[0]["keep_copy"] is True
    assert json.loads(p.ctl("--json", "autoreply", "list").stdout)[0]["subject"] == "Away"
    pools = json.loads(p.ctl("--json", "relay", "list").stdout)
    assert pools[0]["pool"] == "outbound" and pools[0]["relays"][0]["host"] == "relay1.example", pools
    assert json.loads(p.ctl("--json", "alias", "list").stdout) == []


def test_relay_add_to_a_missing_pool_is_refused(p, m1):
    r = ctl_raw(p, "relay", "add", "nopool", "relay2.example")
    assert r.returncode == 1 and "no pool 'nopool'" in r.stderr, r.stderr


def test_rule_table_entries_are_removed(p, m1):
    d = p.domain
    for args in (["catchall", "remove", d], ["forward", "remove", f"alice@{d}", "alice@elsewhere.example"],
                 ["autoreply", "remove", f"alice@{d}"], ["mailing-list", "remove", f"team@{d}"],
                 ["relay", "pool-remove", "outbound"], ["user", "remove", f"alice@{d}"]):
        p.ctl(*args)

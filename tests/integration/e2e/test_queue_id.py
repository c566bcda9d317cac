"""End-to-end: one queue id names a message everywhere (issue 13).

The id in the 250 reply ("queued as X") is the one in the delivered copy's
Received: header ("with ESMTP id X"), in wsmtp's, wroute's and wdeliver's log
lines about it ("msg=X"), and the one `wsmtpctl show X` takes; for a small
message (stored whole) and a big one (streamed in chunks) alike. A message
refused during DATA is logged under its queue id too. Ids never repeat:
after the listener restarts every new id is above every earlier one, and a
second listener on the same database (as a second host would run) hands out
ids that neither listener handed out before. A bounce (DSN) has its own queue
id, and its log lines name both its own and the original's.
"""
import os
import re
import signal
import smtplib
import subprocess

import pytest
from pgtmp import free_port
from pipeline import DAEMON_PATHS, Pipeline, wait_until

# The functions below run in file order on one pipeline: ids handed out earlier
# are compared with those after the restart.
SENDER = "sender@client.example"
MAX_SIZE = 300000


def send(p, subject, body="hello\r\n", port=None, rcpt="alice", sender=SENDER):
    """Sends one message; returns the queue id from the 250 reply."""
    with smtplib.SMTP("127.0.0.1", port or p.port, timeout=30) as s:
        s.ehlo("client.example")
        s.mail(sender)
        code, text = s.rcpt(f"{rcpt}@{p.domain}")
        assert code == 250, (code, text)
        code, text = s.data(f"From: {sender}\r\nSubject: {subject}\r\n\r\n{body}")
    assert code == 250, (code, text)
    m = re.fullmatch(rb"2\.0\.0 Ok: queued as (\S+)", text)
    assert m, text
    return m.group(1).decode()


def delivered(p, subject):
    for path in p.maildir_files("alice"):
        with open(path, "rb") as f:
            data = f.read()
        if f"Subject: {subject}\n".encode() in data:
            return data
    return None


def check_everywhere(p, qid, subject, listener="wsmtp"):
    wait_until(lambda: delivered(p, subject), 30, what=f"delivery of {subject}")
    data = delivered(p, subject)
    ids = re.findall(rb"with ESMTP id (\S+?)[;\n]", data)
    assert ids == [qid.encode()], f"{subject}: Received: ids {ids}, 250 said {qid}"
    line = re.compile(rf"\bmsg={re.escape(qid)}\b")
    for daemon, what in ((listener, " accepted from=<"), ("wroute", " state RECEIVED->ROUTING"),
                         ("wdeliver", " delivered rcpt=alice@")):
        # The copy may be in the Maildir a moment before the line is written.
        wait_until(lambda: any(line.search(l) and what in l for l in p.log(daemon).splitlines()), 10,
                   what=f"{daemon}: a line 'msg={qid}{what}'")
    shown = p.ctl("show", qid).stdout
    assert re.search(rf"^message\s+{re.escape(qid)}$", shown, re.M), shown
    assert f"Subject: {subject}" in shown, shown


def start_second_listener(p):
    """Another wsmtp on the same database and its own port: a second host."""
    port = free_port()
    with open(p.config) as f:
        text = f.read()
    config = os.path.join(p.root, "wsmtp2.conf")
    with open(config, "w") as f:
        f.write(text.replace(f"listen = 127.0.0.1:{p.port}", f"listen = 127.0.0.1:{port}"))
    log = open(os.path.join(p.log_dir, "wsmtp2.log"), "a")
    proc = subprocess.Popen([os.path.join(p.bindir, DAEMON_PATHS["wsmtp"]), "--config", config],
                            stdout=log, stderr=log, start_new_session=True)
    log.close()
    p.procs.setdefault("wsmtp", []).append(proc)  # stopped by the pipeline, by PID
    saved, p.port = p.port, port
    try:
        p.wait_for_port()
    finally:
        p.port = saved
    return port


@pytest.fixture(scope="module")
def p():
    with Pipeline(listener_extra=f"max_message_size = {MAX_SIZE}\n") as p:
        p.add_domain()
        p.add_mailbox("alice")
        p.start_all()
        yield p


@pytest.fixture(scope="module")
def first(p):
    """The ids of a small message (stored whole) and a big one (streamed)."""
    small = send(p, "small")
    # Bigger than one body chunk (128 KiB): streamed, its row created under the id.
    big = send(p, "big", ("x" * 998 + "\r\n") * 200)
    return small, big


def test_small_and_big_messages_get_distinct_ids(first):
    small, big = first
    assert small != big


def test_small_message_id_is_the_same_everywhere(p, first):
    check_everywhere(p, first[0], "small")


def test_streamed_message_id_is_the_same_everywhere(p, first):
    check_everywhere(p, first[1], "big")


def test_wsmtp_logs_no_session_id(p, first):
    log = p.log("wsmtp")
    assert not re.search(r"\bid=|\d+S\d+", log), "wsmtp still logs a session id"


def test_a_dsn_has_its_own_id_and_its_lines_name_the_original(p):
    # A DSN is a message of its own: its lines name its id and the original's.
    p.add_mailbox("broken")
    os.makedirs(os.path.dirname(os.path.dirname(p.maildir("broken"))), exist_ok=True)
    with open(os.path.dirname(p.maildir("broken")), "w") as f:
        f.write("a file where the mailbox's directory should be\n")
    orig = send(p, "doomed", rcpt="broken", sender=f"alice@{p.domain}")
    dsn_line = re.compile(rf"\bmsg=(\d+) dsn for msg={re.escape(orig)} created in state RECEIVED")
    # The DSN is made by whoever gives up on the message: wdeliver (a
    # permanent failure) or, for a deferred one, `wsmtpctl bounce` at once.
    bounce_output = []

    def bounced():
        r = p.ctl("bounce", orig, check=False)
        bounce_output.append(r.stdout + r.stderr)
        return r.returncode == 0
    try:
        wait_until(lambda: dsn_line.search(p.log("wdeliver")), 2, what="an immediate bounce")
    except AssertionError:  # deferred: the operator gives up on it
        wait_until(bounced, 30, interval=0.5, what=f"wsmtpctl bounce {orig}")
    if bounce_output:  # wsmtpctl names both ids: "msg=ORIG bounced ...; DSN msg=N queued to the sender"
        found = re.search(rf"\bmsg={re.escape(orig)} .*DSN msg=(\d+) queued", bounce_output[-1])
        assert found, bounce_output[-1]
        dsn = found.group(1)
    else:
        dsn = dsn_line.search(p.log("wdeliver")).group(1)
        assert re.search(rf"\bmsg={re.escape(orig)} DSN msg={dsn} queued to <alice@", p.log("wdeliver"))
    wait_until(lambda: re.search(rf"\bmsg={dsn} delivered rcpt=alice@", p.log("wdeliver")), 30,
               what=f"delivery of the DSN msg={dsn}")
    assert p.ctl("show", dsn).returncode == 0


@pytest.fixture(scope="module")
def refused(p):
    """A message refused during DATA: its code and the ids the refusal was logged under."""
    with p.smtp() as s:
        s.ehlo("client.example")
        s.mail(SENDER)
        s.rcpt(f"alice@{p.domain}")
        code, _ = s.data("Subject: huge\r\n\r\n" + ("y" * 998 + "\r\n") * (MAX_SIZE // 1000 + 10))
    ids = re.findall(r"msg=(\S+) rejected from=<[^>]*> client=127\.0\.0\.1: message larger than",
                     p.log("wsmtp"))
    return code, ids


def test_a_message_refused_in_data_is_logged_under_an_unused_id(p, first, refused):
    code, ids = refused
    assert code == 552, code
    assert len(ids) == 1, p.log("wsmtp")
    assert ids[0] not in first
    assert p.ctl("show", ids[0], check=False).returncode == 1  # never stored


def test_old_session_ids_are_no_queue_ids(p):
    bad = p.ctl("show", "1S0", check=False)
    assert bad.returncode == 2 and "not a queue id" in bad.stderr, (bad.returncode, bad.stderr)


@pytest.fixture(scope="module")
def restarted(p, first, refused):
    """Ids before a listener restart, and after it from it and a second listener."""
    before = list(first) + refused[1][:1] + [send(p, f"before{i}") for i in range(3)]
    p.kill("wsmtp", signal.SIGTERM)
    p.start("wsmtp")
    second = start_second_listener(p)
    after = []
    for i in range(4):
        after.append(send(p, f"after{i}"))
        after.append(send(p, f"second{i}", port=second))
    print(f"queue ids: before restart {before}, after restart and on a second listener {after}")
    return before, after


def test_ids_never_repeat_across_a_restart_and_a_second_listener(restarted):
    before, after = restarted
    assert len(set(after)) == len(after), after
    numeric = [int(q) for q in before + after]
    assert min(numeric[len(before):]) > max(numeric[:len(before)]), (before, after)


def test_ids_after_the_restart_are_the_same_everywhere(p, restarted):
    after = restarted[1]
    check_everywhere(p, after[-1], "second3", listener="wsmtp2")
    check_everywhere(p, after[-2], "after3")

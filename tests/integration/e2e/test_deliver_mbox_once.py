"""mbox exactly once: wdeliver is SIGKILLed after it appended a message to the
spool and before its result was committed — the window in which a plain mbox
delivery agent delivers the message a second time on the retry.

The window is held open on purpose: the test holds the spool's fcntl lock while
wdeliver claims the message, then locks the message's row in PostgreSQL and
releases the spool, so wdeliver appends, fsyncs and marks its copy done, then
blocks on its commit. SIGKILL. After the lease expires the reaper returns the
message, a new wdeliver retries it, finds its copy at the journalled offset
(deliveries.spool_offset, the X-WSMTP-Delivery header) and appends nothing:
mailbox.mbox reads exactly one copy. Bounded: one message, well under a minute.
"""
import fcntl
import mailbox
import os
import subprocess
import time

import pytest
from deliver_harness import Pipeline, add_mbox_mailbox, queue_counts, set_section, sql, wait_until


class RowLock:
    """A psql session holding FOR UPDATE on one message row until released."""

    def __init__(self, p, msg_id):
        self.proc = subprocess.Popen(["psql", "-X", "-q", "-A", "-t", "-d", p.pg.conninfo("wsmtp")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.proc.stdin.write(f"BEGIN;\nSELECT 'locked' FROM messages WHERE id = {msg_id} FOR UPDATE;\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "locked"

    def release(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("ROLLBACK;\n\\q\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def env():
    with Pipeline(lease_time="5s") as p:
        set_section(p, "deliver", transports="maildir, mbox", retry_base="1s", mbox_lock_timeout="60s")
        spool = os.path.join(p.root, "spool", "ann")
        os.makedirs(os.path.dirname(spool))
        open(spool, "w").close()
        p.add_domain()
        add_mbox_mailbox(p, "ann", spool)
        for name in ("wsmtp", "wroute", "wreaper"):
            p.start(name)
        yield p, spool


@pytest.fixture(scope="module")
def killed_in_the_window(env):
    """wdeliver appended and marked its copy done, and is SIGKILLed blocked on its commit;
    returns the message's state and journalled offset seen just before the kill."""
    p, spool = env
    holder = open(spool, "a+")
    fcntl.lockf(holder, fcntl.LOCK_EX)  # POSIX record lock, as wdeliver takes it
    row = None
    try:
        p.start("wdeliver")
        with p.smtp() as s:
            s.sendmail(f"sender@{p.domain}", [f"ann@{p.domain}"],
                       "Subject: once\r\nMessage-ID: <once@t>\r\n\r\nFrom here on, exactly once.\r\n")
        wait_until(lambda: sql(p, "SELECT state FROM messages WHERE id = 1") == "4", 30,
                   what="wdeliver claimed the message (and waits for the spool)")
        row = RowLock(p, 1)
        fcntl.lockf(holder, fcntl.LOCK_UN)
        wait_until(lambda: "done\n" in open(spool).read(), 30, what="the copy appended and marked done")
        time.sleep(0.5)  # wdeliver is now blocked on its commit
        seen = {"state": sql(p, "SELECT state FROM messages WHERE id = 1"),
                "spool_offset": sql(p, "SELECT spool_offset FROM deliveries")}
        p.kill("wdeliver")
    finally:
        if row:
            row.release()
        holder.close()
    return seen


@pytest.fixture(scope="module")
def retried(env, killed_in_the_window):
    """The messages in the spool after a new wdeliver retried the message."""
    p, spool = env
    p.start("wdeliver")
    wait_until(lambda: queue_counts(p)["DONE"] == 1, 60, interval=0.3, what="the retried message DONE")
    box = mailbox.mbox(spool)
    try:
        return list(box)
    finally:
        box.close()


def test_offset_is_journalled_before_the_append(killed_in_the_window):
    assert killed_in_the_window["state"] == "4"
    assert killed_in_the_window["spool_offset"] == "0", "offset not journalled before the append"


def test_retry_leaves_exactly_one_complete_copy(retried):
    messages = retried
    assert len(messages) == 1, f"{len(messages)} copies in the spool"
    assert messages[0]["Subject"] == "once"
    assert messages[0]["X-WSMTP-Delivery"].endswith(" done")
    assert ">From here on, exactly once." in messages[0].get_payload()


def test_retry_finds_its_copy_and_appends_nothing(env, retried):
    p = env[0]
    assert "already in" in p.log("wdeliver") and "not appended again" in p.log("wdeliver")

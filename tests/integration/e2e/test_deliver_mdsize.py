"""Maildir++ quotas shared with a real Dovecot (quota = maildir) through
<Maildir>/maildirsize.

bob has a 4K quota in the database and the same quota_rule in Dovecot; alice
has none. wdeliver fills bob's Maildir until the rest waits with 4.2.2, and
keeps maildirsize exact: its totals equal the files, Dovecot reports the same
figures (`doveadm quota get`), and Dovecot's own recount (`doveadm quota
recalc`) writes the same numbers. Then bob deletes his mail over POP3: Dovecot
appends the negative lines, and wdeliver's next retries read the freed room
from the file (no recount: Dovecot's lines stay, followed by one "<size> 1" per
copy) and deliver the waiting messages. alice's Maildir never gets a
maildirsize. Bounded: 8 messages, a few seconds.
"""
import os
import poplib
import re

import pytest
from deliver_harness import Pipeline, set_section, sql, wait_until
from mdsize_dovecot import PASSWORD, QuotaDovecot, read_maildirsize, totals

# The functions below run in file order: bob's Maildir is filled, then emptied over POP3.
QUOTA = 4096
SUBJECTS = [f"md{i}" for i in range(6)]


def send(p, rcpt, subjects):
    with p.smtp() as s:
        for subject in subjects:
            body = "".join(f"{subject} line {i:04d} " + "x" * 50 + "\r\n" for i in range(12))
            s.sendmail(f"carol@{p.domain}", [f"{rcpt}@{p.domain}"],
                       f"Subject: {subject}\r\nMessage-ID: <{subject}@t>\r\n\r\n{body}")


def usage(p, user):
    files = p.maildir_files(user)
    return sum(os.path.getsize(f) for f in files), len(files)


def subjects_in(p, user):
    out = []
    for path in p.maildir_files(user):
        with open(path, "rb") as f:
            out.append(re.search(rb"^Subject: (\S+)", f.read(), re.M).group(1).decode())
    return out


def kib(n):
    """Bytes as doveadm quota get shows them: KiB, rounded up."""
    return (n + 1023) // 1024


def count(p, where):
    return int(sql(p, f"SELECT count(*) FROM deliveries WHERE recipient = 'bob@{p.domain}' AND {where}"))


@pytest.fixture(scope="module")
def env(failure_logs):
    with Pipeline(lease_time="10s") as p:
        # Dovecot runs as nobody: wdeliver writes the Maildirs (and maildirsize) as nobody too.
        set_section(p, "deliver", transports="maildir", retry_base="1s", retry_max="2s", maildir_owner="nobody")
        p.add_domain()
        for user in ("alice", "bob"):
            p.add_mailbox(user)
        p.ctl("mailbox", "quota", f"bob@{p.domain}", "4K")
        os.makedirs(p.mail_root, exist_ok=True)
        dovecot = QuotaDovecot(p.root, p.mail_root, {"bob": (QUOTA, None)})
        failure_logs.append(("dovecot log", lambda: dovecot.read_log()[-3000:]))
        try:
            p.start_all()
            yield p, dovecot
        finally:
            dovecot.stop()


@pytest.fixture(scope="module")
def full(env):
    """bob's Maildir full (the rest refused with 4.2.2), alice's delivered; bob's usage."""
    p, dovecot = env
    send(p, "bob", SUBJECTS)
    send(p, "alice", ["free0", "free1"])
    # Every copy for bob either delivered or refused at least once.
    wait_until(lambda: count(p, "status = 'delivered'") + count(p, "status = 'pending' AND last_error LIKE '4.2.2 %'")
               == len(SUBJECTS) and len(p.maildir_files("alice")) == 2, 30, what="bob full, alice delivered")
    return usage(p, "bob")


def test_bob_fills_up_to_the_quota(full):
    used, messages = full
    assert 0 < used <= QUOTA and 0 < messages < len(SUBJECTS), (used, messages)


def test_maildirsize_totals_equal_the_files(env, full):
    p = env[0]
    line, changes = read_maildirsize(p.maildir("bob"))
    assert line == f"{QUOTA}S", line
    assert totals(changes) == full, f"maildirsize says {totals(changes)}, the Maildir holds {full}"


def test_unlimited_mailbox_gets_no_maildirsize(env, full):
    assert read_maildirsize(env[0].maildir("alice")) is None, "an unlimited mailbox got a maildirsize"


def test_dovecot_reports_the_same_figures_and_its_recount_agrees(env, full):
    p, dovecot = env
    used, messages = full
    seen = dovecot.quota("bob")
    assert seen["STORAGE"] == (kib(used), kib(QUOTA)) and seen["MESSAGE"][0] == messages, seen
    dovecot.recalc("bob")
    line, changes = read_maildirsize(p.maildir("bob"))
    assert line == f"{QUOTA}S" and changes == [(used, messages)], (line, changes)


@pytest.fixture(scope="module")
def freed(env, full):
    """bob deletes everything over POP3 while wdeliver is stopped; returns what he had and maildirsize then."""
    p, dovecot = env
    first = subjects_in(p, "bob")
    p.kill("wdeliver", sig=15)  # still while bob reads, so the file can be checked before the retries
    pop = poplib.POP3("127.0.0.1", dovecot.pop3_port, timeout=30)
    pop.user("bob")
    pop.pass_(PASSWORD)
    n, _ = pop.stat()
    for i in range(1, n + 1):
        pop.dele(i)
    pop.quit()
    _, changes = read_maildirsize(p.maildir("bob"))
    return first, changes


def test_dovecot_appends_negative_lines_on_pop3_delete(freed):
    changes = freed[1]
    # Dovecot appends one negative line per expunging transaction.
    assert totals(changes) == (0, 0) and len(changes) > 1 and all(c[0] < 0 and c[1] < 0 for c in changes[1:]), changes


def test_wdeliver_reads_the_freed_room_and_delivers_the_waiting_messages(env, freed):
    p, dovecot = env
    first, dovecot_changes = freed
    dovecot_lines = len(dovecot_changes)
    p.start("wdeliver")
    # The waiting messages are retried every 1-2 s and now fit.
    wait_until(lambda: count(p, "status = 'delivered'") == len(SUBJECTS), 30, what="the waiting messages delivered")
    assert sorted(first + subjects_in(p, "bob")) == sorted(SUBJECTS), (first, subjects_in(p, "bob"))
    used, messages = usage(p, "bob")
    _, changes = read_maildirsize(p.maildir("bob"))
    sizes = sorted(os.path.getsize(f) for f in p.maildir_files("bob"))
    # Read, not recounted: Dovecot's lines are still there, then one line per new copy.
    assert sorted(c[0] for c in changes[dovecot_lines:]) == sizes, (changes, sizes)
    assert all(c[1] == 1 for c in changes[dovecot_lines:]), changes
    assert totals(changes) == (used, messages), (totals(changes), used, messages)
    seen = dovecot.quota("bob")
    assert seen["MESSAGE"][0] == messages and seen["STORAGE"][0] == kib(used), seen
    assert sql(p, "SELECT count(*) FROM deliveries WHERE status = 'bounced'") == "0"

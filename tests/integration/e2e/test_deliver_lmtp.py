"""LMTP (RFC 2033) to a real Dovecot: wdeliver hands each message with all its
LMTP recipients to Dovecot's LMTP service in one transaction and maps the
per-recipient final replies to per-delivery results: the known users get their
copy (checked over POP3: once each, content intact), the user Dovecot does not
know bounces with 5.1.1 and the sender receives one DSN. Bounded: 30 messages.
"""
import os
import poplib
import re

import pytest
from deliver_dovecot import PASSWORD, Dovecot
from deliver_harness import Pipeline, queue_counts, set_section, sql, wait_until

MESSAGES = 30
KNOWN = ("l0", "l1")
UNKNOWN = "ghost"


@pytest.fixture(scope="module")
def env(failure_logs):
    with Pipeline(lease_time="10s") as p:
        os.makedirs(p.mail_root)
        dovecot = Dovecot(p.root, p.mail_root, users=KNOWN)
        failure_logs.append(("dovecot log", lambda: dovecot.read_log()[-3000:]))
        try:
            os.chown(p.mail_root, dovecot.uid, dovecot.gid)
            set_section(p, "deliver", transports="maildir, lmtp", retry_base="1s",
                        lmtp_server=f"127.0.0.1:{dovecot.lmtp_port}")
            yield p, dovecot
        finally:
            dovecot.stop()


@pytest.fixture(scope="module")
def bodies(env):
    """Sends every message and waits until all (and the DSN) are DONE."""
    p, dovecot = env
    p.add_domain()
    p.add_mailbox("sender")  # a Maildir mailbox: receives the DSN
    for u in KNOWN + (UNKNOWN,):
        p.ctl("mailbox", "add", f"{u}@{p.domain}", "--transport", "lmtp", "--lmtp", f"127.0.0.1:{dovecot.lmtp_port}")
    p.start_all()
    bodies = {}
    with p.smtp() as s:
        for i in range(MESSAGES):
            subject = f"lmtp-{i:03d}"
            bodies[subject] = f"Subject: {subject}\r\n\r\n.dot line\r\nbody {i}\r\n".encode()
            rcpts = [f"{u}@{p.domain}" for u in KNOWN] + ([f"{UNKNOWN}@{p.domain}"] if i == 7 else [])
            s.sendmail(f"sender@{p.domain}", rcpts, bodies[subject])
    wait_until(lambda: queue_counts(p)["DONE"] == MESSAGES + 1, 90, interval=0.3, what="all DONE (with the DSN)")
    return bodies


@pytest.mark.parametrize("user", KNOWN)
def test_known_user_gets_each_message_once_intact_over_pop3(env, bodies, user):
    dovecot = env[1]
    pop = poplib.POP3("127.0.0.1", dovecot.pop3_port, timeout=30)
    pop.user(user)
    pop.pass_(PASSWORD)
    got = {}
    for n in range(1, pop.stat()[0] + 1):
        raw = b"".join(line + b"\r\n" for line in pop.retr(n)[1])
        subject = re.search(rb"\r\nSubject: (\S+)\r\n", raw).group(1).decode()
        assert subject not in got, f"{user}: {subject} twice"
        got[subject] = raw
    pop.quit()
    assert set(got) == set(bodies), f"{user}: missing {set(bodies) - set(got)}"
    assert all(raw.endswith(bodies[s]) for s, raw in got.items()), f"{user}: content differs"


def test_unknown_user_bounces_with_5_1_1(env, bodies):
    p = env[0]
    status = sql(p, f"SELECT status || ' ' || last_error FROM deliveries WHERE recipient = '{UNKNOWN}@{p.domain}'")
    assert status.startswith("bounced 550 5.1.1"), status


def test_sender_gets_one_dsn_naming_only_the_unknown_user(env, bodies):
    p = env[0]
    files = p.maildir_files("sender")
    assert len(files) == 1, files
    with open(files[0]) as f:
        dsn = f.read()
    assert f"Final-Recipient: rfc822; {UNKNOWN}@{p.domain}\nAction: failed\nStatus: 5.1.1" in dsn, dsn
    assert "l0@" not in dsn.split("message/delivery-status")[1].split("text/rfc822-headers")[0]

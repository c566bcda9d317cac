"""The database disk cannot be filled through the listener (issue 15, item 9).

Queue full: with [listener] queue_max_size a few MiB above the database's
measured size and no router or deliverer running, 64 KiB messages are sent
until MAIL is answered 452 4.3.1; every message answered 250 is in the queue
under the id its 250 named. Once the messages are deleted and vacuumed, MAIL is
accepted again within queue_size_check_interval.

Mailbox full: bob has a 4K quota; a second message does not fit and is
deferred, after which RCPT to bob gets 452 4.2.2 while alice, in the same
transaction, is accepted and delivered. When bob's quota is raised (in the
table, so that only the deliverer's success path can clear the mark), the
deferred copy is delivered and RCPT to bob is accepted again; `wsmtpctl
mailbox quota` clears a mark at once.
Bounded: at most 200 messages of 64 KiB, then a handful of small ones.
"""
import base64
import json
import os
import re
import signal
import smtplib
import time

import pytest
from listener_harness import sql
from pipeline import Pipeline, wait_until

# The functions below run in file order on one pipeline: the queue-full phase
# runs with the listener alone, then the router and deliverer start.
HEADROOM = 3 << 20
MAX_MESSAGES = 200


def db_size(p):
    return int(sql(p, "SELECT pg_database_size('wsmtp')")[0][0])


def restart_listener(p, extra):
    """wsmtp restarted with `extra` lines at the top of [listener] (queue_* need a restart)."""
    p.kill("wsmtp", signal.SIGTERM)
    text = open(p.config).read()
    text = re.sub(r"^queue_(max_size|size_check_interval) = .*\n", "", text, flags=re.M)
    text = text.replace("[listener]\n", "[listener]\n" + extra, 1)
    with open(p.config, "w") as f:
        f.write(text)
    p.start("wsmtp")


def mail_code(p):
    with p.smtp() as s:
        s.ehlo("client.test")
        return s.mail(f"a@{p.domain}")


@pytest.fixture(scope="module")
def p():
    with Pipeline(domain="demo.test", listener_extra="recipient_cache_time = 0\n") as p:
        p.add_domain()
        for user in ("alice", "bob"):
            p.add_mailbox(user)
        yield p


@pytest.fixture(scope="module")
def filled(p):
    """Sends until 452; (ids named by the 250s, the 452 reply, the limit)."""
    limit = db_size(p) + HEADROOM
    restart_listener(p, f"queue_max_size = {limit}\nqueue_size_check_interval = 1s\n")
    accepted, refused, over_since = [], None, None
    with p.smtp(timeout=60) as s:
        s.ehlo("client.test")
        for i in range(MAX_MESSAGES):
            code, text = s.mail(f"a@{p.domain}")
            if code != 250:
                refused = (code, text.decode())
                break
            assert s.rcpt(f"alice@{p.domain}")[0] == 250
            # Random bytes in base64: PostgreSQL cannot compress them away.
            body = base64.encodebytes(os.urandom(48 << 10)).decode().replace("\n", "\r\n")
            code, text = s.data(f"Subject: fill {i}\r\n\r\n{body}")
            assert code == 250, (code, text)
            accepted.append(re.search(rb"queued as (\S+)", text).group(1).decode())
            # The size is sampled every second, not per command: paced so the
            # overshoot stays a few messages, and not waited for past 5 s.
            time.sleep(0.05)
            if db_size(p) >= limit:
                over_since = over_since or time.time()
                assert time.time() - over_since < 5, f"still accepting {len(accepted)} messages past the limit"
    return accepted, refused, limit


def test_mail_gets_452_431_once_the_queue_reaches_its_limit(p, filled):
    accepted, refused, limit = filled
    assert refused is not None, f"no 452 after {len(accepted)} messages (limit {limit}, size {db_size(p)})"
    assert refused[0] == 452 and refused[1].startswith("4.3.1"), refused
    assert len(accepted) >= 5, f"the limit was not reached at once: {len(accepted)} accepted"
    assert "queue full" in p.log("wsmtp")


def test_every_message_answered_250_is_in_the_queue(p, filled):
    accepted, _, _ = filled
    rows = sql(p, "SELECT id FROM messages WHERE state = 1 AND envelope_from = 'a@demo.test'")
    assert sorted(int(r[0]) for r in rows) == sorted(int(q) for q in accepted)


def test_mail_is_accepted_again_once_space_is_given_back(p, filled):
    assert mail_code(p)[0] == 452
    sql(p, "DELETE FROM messages")
    # What autovacuum does in time: the tables' empty ends are given back.
    sql(p, "VACUUM")
    wait_until(lambda: mail_code(p)[0] == 250, 15, interval=0.5, what="MAIL accepted again")
    assert "queue no longer full" in p.log("wsmtp")


@pytest.fixture(scope="module")
def bob_full(p, filled):
    """bob's 4K quota, one message delivered, one deferred as over quota."""
    restart_listener(p, "")
    p.ctl("mailbox", "quota", f"bob@{p.domain}", "4K")
    p.start("wroute")
    p.start("wdeliver")
    text = "x" * 60 + "\r\n"
    with p.smtp() as s:
        for i in range(2):
            s.sendmail(f"carol@{p.domain}", [f"bob@{p.domain}"], f"Subject: b{i}\r\n\r\n" + text * 40)
    wait_until(lambda: sql(p, "SELECT over_quota_seen IS NOT NULL FROM mailboxes "
                              "WHERE address = 'bob@demo.test'")[0][0] == "t", 30, what="bob marked full")
    return p


def test_full_mailbox_gets_452_422_while_others_are_accepted(bob_full):
    p = bob_full
    before = len(p.maildir_files("alice"))
    with p.smtp() as s:
        s.ehlo("client.test")
        assert s.mail(f"carol@{p.domain}")[0] == 250
        code, text = s.rcpt(f"bob@{p.domain}")
        assert (code, text.decode()[:5]) == (452, "4.2.2"), (code, text)
        assert s.rcpt(f"alice@{p.domain}")[0] == 250
        assert s.data("Subject: both\r\n\r\nhello\r\n")[0] == 250
    wait_until(lambda: len(p.maildir_files("alice")) == before + 1, 30, what="alice's copy")
    assert "mailbox full" in p.log("wsmtp")


def test_wsmtpctl_shows_the_mark(bob_full):
    p = bob_full
    shown = p.ctl("mailbox", "show", f"bob@{p.domain}").stdout
    assert "over quota since 20" in shown and "452 4.2.2" in shown, shown
    as_json = json.loads(p.ctl("--json", "mailbox", "show", f"bob@{p.domain}").stdout)
    assert as_json["over_quota_since"].endswith("Z"), as_json
    alice = json.loads(p.ctl("--json", "mailbox", "show", f"alice@{p.domain}").stdout)
    assert alice["over_quota_since"] is None
    assert "over quota" not in p.ctl("mailbox", "show", f"alice@{p.domain}").stdout


def test_a_copy_that_fits_again_clears_the_mark(bob_full):
    p = bob_full
    # Not through wsmtpctl (which clears the mark itself): only the deliverer's
    # retry of the deferred copy, which now fits, may clear it.
    sql(p, "UPDATE mailboxes SET quota_bytes = 1048576 WHERE address = 'bob@demo.test'")
    wait_until(lambda: len(p.maildir_files("bob")) == 2, 30, what="bob's deferred copy")
    wait_until(lambda: sql(p, "SELECT over_quota_seen IS NULL FROM mailboxes "
                              "WHERE address = 'bob@demo.test'")[0][0] == "t", 10, what="mark cleared")
    with p.smtp() as s:
        s.ehlo("client.test")
        s.mail(f"carol@{p.domain}")
        assert s.rcpt(f"bob@{p.domain}")[0] == 250


def test_wsmtpctl_quota_clears_a_mark(bob_full):
    p = bob_full
    sql(p, "UPDATE mailboxes SET over_quota_seen = now() WHERE address = 'bob@demo.test'")
    with p.smtp() as s:
        s.ehlo("client.test")
        s.mail(f"carol@{p.domain}")
        assert s.rcpt(f"bob@{p.domain}")[0] == 452
    p.ctl("mailbox", "quota", f"bob@{p.domain}", "2M")
    with p.smtp() as s:
        s.ehlo("client.test")
        s.mail(f"carol@{p.domain}")
        assert s.rcpt(f"bob@{p.domain}")[0] == 250

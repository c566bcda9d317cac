"""End-to-end: one wdeliver on a queue group of two shards (issue 17).

Messages routed (state 3, a pending Maildir delivery each; written straight
into each shard's database, as a router on that shard would leave them) in
both shards q1 and q2 are delivered by one wdeliver, whose worker groups
serve each shard, into the Maildirs of mailboxes that live in the directory.
Then q2's database stops taking connections and its sessions are cut
(ALTER DATABASE ... ALLOW_CONNECTIONS false, pg_terminate_backend): mail in
q1 still flows, q2's waits, and once q2 is back its mail is delivered too,
each message exactly once. wreaper, one pass per shard, keeps reaping q1
while q2 is away.
"""
import time

import pytest
from pipeline import Pipeline, wait_until

BODY = "From: sender@client.example\r\nSubject: {subject}\r\n\r\nbody {subject}\r\n"


@pytest.fixture(scope="module")
def p(failure_logs):
    with Pipeline(shards=2, lease_time="3s") as p:
        p.add_domain()
        for user in ("alice", "bob"):
            p.add_mailbox(user)
        p.start("wdeliver")
        p.start("wreaper")
        yield p


def routed(p, shard, user, subject, due_in=0):
    """A message in shard, routed (state 3) with one pending Maildir delivery
    to user, due in due_in seconds; returns its id."""
    body = BODY.format(subject=subject).replace("'", "''")
    rcpt = f"{user}@{p.domain}"
    msg_id = p.shard_sql(
        shard,
        "WITH m AS (INSERT INTO messages (state, envelope_from, size) "
        f"          VALUES (1, 'sender@client.example', {len(body)}) RETURNING id), "
        "     r AS (INSERT INTO recipients (message_id, seq, address) "
        f"          SELECT id, 0, '{rcpt}' FROM m), "
        "     b AS (INSERT INTO body_chunks (message_id, seq, data) "
        f"          SELECT id, 0, convert_to(E'{body}', 'UTF8') FROM m) "
        "SELECT id FROM m")
    p.shard_sql(shard, f"UPDATE messages SET state = 2 WHERE id = {msg_id}")
    p.shard_sql(
        shard,
        "INSERT INTO deliveries (message_id, recipient, original_rcpt, transport, destination) "
        f"VALUES ({msg_id}, '{rcpt}', '{rcpt}', 'maildir', '{p.maildir(user)}')")
    due = f"now() + interval '{due_in} seconds'"
    p.shard_sql(shard, f"UPDATE deliveries SET next_attempt_at = {due} WHERE message_id = {msg_id}")
    p.shard_sql(shard, f"UPDATE messages SET state = 3, next_attempt_at = {due} WHERE id = {msg_id}")
    return int(msg_id)


def copies(p, user, subject):
    n = 0
    for path in p.maildir_files(user):
        with open(path, encoding="utf-8", errors="replace") as f:
            if f"Subject: {subject}\n" in f.read():
                n += 1
    return n


def state(p, shard, msg_id):
    return p.shard_sql(shard, f"SELECT state FROM messages WHERE id = {msg_id}")


def set_allow_connections(p, shard, allow):
    db = p.shards[shard]
    p.pg.psql(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS {"true" if allow else "false"}')
    if not allow:
        p.pg.psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'")


def test_messages_in_both_shards_are_delivered_by_one_wdeliver(p):
    ids = {("q1", "alice", "one-a"): None, ("q2", "bob", "two-b"): None, ("q2", "alice", "two-a"): None}
    for key in ids:
        ids[key] = routed(p, *key)
    assert str(ids[("q1", "alice", "one-a")]).startswith("1000000000000")  # q1's id range
    assert str(ids[("q2", "bob", "two-b")]).startswith("2000000000000")
    for (shard, user, subject), msg_id in ids.items():
        wait_until(lambda: copies(p, user, subject) == 1, 30, what=f"{subject} delivered from {shard}")
        wait_until(lambda: state(p, shard, msg_id) == "5", 10, what=f"{subject} done in {shard}")
    log = p.log("wdeliver")
    for msg_id in ids.values():
        assert f"msg={msg_id} delivered" in log


def test_a_shard_that_is_down_stops_only_its_own_mail(p):
    # Due only after q2 has gone: it waits in q2 through the outage.
    waiting = routed(p, "q2", "bob", "waiting-in-q2", due_in=6)
    set_allow_connections(p, "q2", False)
    try:
        for i in range(3):
            routed(p, "q1", "alice", f"while-q2-down-{i}")
        for i in range(3):
            wait_until(lambda: copies(p, "alice", f"while-q2-down-{i}") == 1, 30,
                       what=f"q1 mail {i} delivered while q2 is down")
        # q1's reaper passes go on while q2's fail.
        passes = p.log("wreaper").count("reaper pass on shard q1:")
        wait_until(lambda: p.log("wreaper").count("reaper pass on shard q1:") > passes, 15,
                   what="a reaper pass on q1 while q2 is down")
        time.sleep(6)  # past the waiting message's due time
        assert copies(p, "bob", "waiting-in-q2") == 0
        assert p.alive("wdeliver") and p.alive("wreaper")
    finally:
        set_allow_connections(p, "q2", True)
    # q2 is back: its waiting mail and new mail flow again.
    after = routed(p, "q2", "bob", "after-q2-back")
    for subject, msg_id in (("waiting-in-q2", waiting), ("after-q2-back", after)):
        wait_until(lambda: copies(p, "bob", subject) == 1, 60, what=f"{subject} delivered after q2 is back")
        wait_until(lambda: state(p, "q2", msg_id) == "5", 10, what=f"{subject} done in q2")


def test_no_message_was_delivered_twice(p):
    time.sleep(2)  # any late duplicate would land by now
    for user, expected in (("alice", 5), ("bob", 3)):
        subjects = []
        for path in p.maildir_files(user):
            with open(path, encoding="utf-8", errors="replace") as f:
                subjects += [line.strip() for line in f if line.startswith("Subject: ")][:1]
        assert len(subjects) == expected, subjects
        assert len(set(subjects)) == expected, subjects

"""wsmtpctl across a queue group of two shards (issue 17): queue sums and shows
each shard, list searches both, show goes to the shard its queue id names, the
bulk actions act on both with the same filters (a bounce's DSN in the message's
own shard), reset and reap cover both, db status shows every database, and a
shard that is unreachable or claimed as another is reported while the other is
still covered.

The messages are written straight into each shard's database (as the listener
would leave them), so these tests depend on wsmtpctl alone, not on how the
daemons place mail. The functions run in file order on one group.
"""
import json
import os
import subprocess

import pytest
from pipeline import Pipeline

SPAN = 10 ** 14  # ids per shard (common/queue_id.h)
CRLF = "' || chr(13) || chr(10) || '"


def ctl_raw(p, *args):
    cmd = [os.path.join(p.bindir, "ctl/wsmtpctl"), "--config", p.config, *args]
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def ctl_json(p, *args):
    r = ctl_raw(p, "--json", *args)
    return r.returncode, json.loads(r.stdout), r.stderr


def sql(p, shard, query):
    return p.pg.psql(query, p.shards[shard])


def insert(p, shard, sender, rcpt, subject):
    """A received message (state 1) with one recipient and a body; its id."""
    return int(sql(p, shard, f"""
        WITH m AS (INSERT INTO messages (state, envelope_from, client_helo, received_by, size, received_at)
                   VALUES (1, '{sender}', 'client.example', 'test', 40, now()) RETURNING id),
             r AS (INSERT INTO recipients (message_id, seq, address) SELECT id, 0, '{rcpt}' FROM m),
             b AS (INSERT INTO body_chunks (message_id, seq, data)
                   SELECT id, 0, convert_to('Subject: {subject}{CRLF}Message-ID: <{subject}@t>{CRLF}{CRLF}body{CRLF}',
                                            'UTF8') FROM m)
        SELECT id FROM m"""))


def route_deferred(p, shard, msg_id, rcpt):
    """Routed (state 3) with one delivery that failed once, due in an hour."""
    sql(p, shard, f"""
        UPDATE messages SET state = 2, lease_owner = 't', lease_token = gen_random_uuid(),
               lease_expires = now() + interval '5 min' WHERE id = {msg_id};
        UPDATE messages SET state = 3, lease_owner = NULL, lease_token = NULL, lease_expires = NULL
         WHERE id = {msg_id};
        INSERT INTO deliveries (message_id, recipient, original_rcpt, transport, destination, attempts,
                                next_attempt_at, last_error)
        VALUES ({msg_id}, '{rcpt}', '{rcpt}', 'maildir', '/dev/null/Maildir', 1, now() + interval '1 hour',
                'Not a directory')""")


def states(q):
    return {s["name"]: s["count"] for s in q["states"]}


@pytest.fixture(scope="module")
def p():
    with Pipeline(shards=2) as p:
        p.add_domain()
        yield p


@pytest.fixture(scope="module")
def msgs(p):
    """In each shard: a flood message and a friend's (RECEIVED), and a friend's
    deferred one (ROUTED)."""
    alice = f"alice@{p.domain}"
    m = {}
    for shard in ("q1", "q2"):
        m[shard] = {"flood": insert(p, shard, "flood@spam.example", alice, f"flood-{shard}"),
                    "friend": insert(p, shard, "friend@ok.example", alice, f"friend-{shard}"),
                    "deferred": insert(p, shard, "friend@ok.example", alice, f"deferred-{shard}")}
        route_deferred(p, shard, m[shard]["deferred"], alice)
    return m


def test_each_shard_issues_ids_that_name_it(p, msgs):
    assert all(i // SPAN == 1 for i in msgs["q1"].values()), msgs
    assert all(i // SPAN == 2 for i in msgs["q2"].values()), msgs


def test_queue_sums_over_the_shards_and_shows_each(p, msgs):
    rc, q, _ = ctl_json(p, "queue")
    assert rc == 0
    assert states(q)["RECEIVED"] == 4 and states(q)["ROUTED"] == 2, q
    assert q["deferred"] == 2, q
    # Summed by key over both shards.
    assert q["top_senders"][0] == {"sender": "friend@ok.example", "count": 4}, q["top_senders"]
    assert q["top_senders"][1] == {"sender": "flood@spam.example", "count": 2}, q["top_senders"]
    assert [s["name"] for s in q["shards"]] == ["q1", "q2"], q["shards"]
    for s in q["shards"]:
        assert s["ok"] and s["reachable"], s
        assert states(s)["RECEIVED"] == 2 and states(s)["ROUTED"] == 1 and s["deferred"] == 1, s
    text = ctl_raw(p, "queue").stdout
    assert "queue group: 2 of 2 shards covered" in text, text
    assert "per shard:" in text and "\n  q1 " in text and "\n  q2 " in text, text


def test_list_finds_the_messages_of_every_shard(p, msgs):
    rc, listed, _ = ctl_json(p, "list")
    assert rc == 0
    want = {i: shard for shard, ids in msgs.items() for i in ids.values()}
    assert {m["id"]: m["shard"] for m in listed} == want, listed
    rc, flood, _ = ctl_json(p, "list", "--sender", "flood@spam.example")
    assert sorted(m["id"] for m in flood) == sorted([msgs["q1"]["flood"], msgs["q2"]["flood"]]), flood
    # Named ids, one per shard.
    rc, named, _ = ctl_json(p, "list", str(msgs["q1"]["friend"]), str(msgs["q2"]["friend"]))
    assert sorted(m["id"] for m in named) == sorted([msgs["q1"]["friend"], msgs["q2"]["friend"]]), named
    assert "SHARD" in ctl_raw(p, "list").stdout


def test_show_goes_to_the_shard_the_queue_id_names(p, msgs):
    rc, shown, _ = ctl_json(p, "show", str(msgs["q2"]["friend"]))
    assert rc == 0 and shown["shard"] == "q2", shown
    assert shown["envelope_recipients"] == [f"alice@{p.domain}"] and "Subject: friend-q2" in shown["headers"], shown
    text = ctl_raw(p, "show", str(msgs["q2"]["deferred"])).stdout
    assert "q2 (id 2)" in text and "Not a directory" in text, text
    r = ctl_raw(p, "show", str(5 * SPAN + 1))
    assert r.returncode == 1 and "shard id 5, which is not configured" in r.stderr, r.stderr
    r = ctl_raw(p, "show", str(2 * SPAN + 99999))
    assert r.returncode == 1 and f"no message {2 * SPAN + 99999} in shard q2" in r.stderr, r.stderr


def test_db_status_shows_every_database(p, msgs):
    rc, status, err = ctl_json(p, "db", "status")
    assert rc == 0, err
    dbs = {d["name"]: d for d in status["databases"]}
    assert list(dbs) == ["directory", "q1", "q2"], status
    assert dbs["directory"]["role"] == "directory" and dbs["directory"]["identity"] is None, dbs
    assert dbs["q2"]["identity"] == {"name": "q2", "id": 2} and dbs["q2"]["configured"] == {"name": "q2", "id": 2}
    assert all(d["ok"] and d["reachable"] and d["pending"] == 0 for d in dbs.values()), dbs
    text = ctl_raw(p, "db", "status").stdout
    assert "q1 (id 1)" in text and "q2 (id 2)" in text and "directory" in text, text


def test_hold_and_release_act_on_both_shards(p, msgs):
    r = ctl_raw(p, "hold", "--sender", "flood@spam.example", "--reason", "looks like spam")
    assert r.returncode == 0 and "held 2 of 2" in r.stdout, (r.stdout, r.stderr)
    for shard in ("q1", "q2"):
        assert sql(p, shard, f"SELECT held FROM messages WHERE id = {msgs[shard]['flood']}") == "t"
    r = ctl_raw(p, "release", "--sender", "flood@spam.example")
    assert r.returncode == 0 and "released 2 of 2" in r.stdout, r.stdout
    for shard in ("q1", "q2"):
        assert sql(p, shard, "SELECT count(*) FROM messages WHERE held") == "0"


def test_named_ids_act_on_their_own_shard(p, msgs):
    ids = [str(msgs["q1"]["friend"]), str(msgs["q2"]["friend"])]
    r = ctl_raw(p, "hold", *ids)
    assert r.returncode == 0 and "held 2 of 2" in r.stdout, r.stdout
    # An id of a shard that is not configured is reported, not lost; the other still acts.
    r = ctl_raw(p, "release", ids[0], str(7 * SPAN + 3))
    assert r.returncode == 1 and "shard id 7, which is not configured" in r.stdout, r.stdout
    assert sql(p, "q1", f"SELECT held FROM messages WHERE id = {ids[0]}") == "f"
    r = ctl_raw(p, "release", ids[1])
    assert r.returncode == 0 and "released 1 of 1" in r.stdout, r.stdout


def test_retry_makes_deferred_mail_due_in_both_shards(p, msgs):
    r = ctl_raw(p, "retry", "--deferred")
    assert r.returncode == 0 and "retrying deliveries 2 of 2" in r.stdout, (r.stdout, r.stderr)
    for shard in ("q1", "q2"):
        assert sql(p, shard, "SELECT count(*) FROM deliveries WHERE next_attempt_at > now()") == "0"


def test_bounce_creates_each_dsn_in_the_messages_own_shard(p, msgs):
    r = ctl_raw(p, "bounce", "--sender", "flood@spam.example")
    assert r.returncode == 0 and "bounced 2 of 2" in r.stdout, (r.stdout, r.stderr)
    for shard, shard_id in (("q1", 1), ("q2", 2)):
        assert sql(p, shard, f"SELECT state FROM messages WHERE id = {msgs[shard]['flood']}") == "5"
        dsn = sql(p, shard, "SELECT m.id || ' ' || r.address FROM messages m JOIN recipients r ON r.message_id = m.id "
                            "WHERE m.envelope_from = ''").split()
        assert len(dsn) == 2 and int(dsn[0]) // SPAN == shard_id and dsn[1] == "flood@spam.example", dsn
        assert sql(p, shard, "SELECT dsn_message_id FROM deliveries WHERE message_id = "
                             f"{msgs[shard]['flood']}") == dsn[0]


def test_reset_returns_stuck_messages_in_both_shards(p, msgs):
    for shard in ("q1", "q2"):
        sql(p, shard, "UPDATE messages SET state = 2, lease_owner = 'dead:1', lease_token = gen_random_uuid(), "
                      f"lease_expires = now() - interval '1 min' WHERE id = {msgs[shard]['friend']}")
    r = ctl_raw(p, "reset", "--state", "ROUTING")
    assert r.returncode == 0 and "2 message(s) reset" in r.stdout, (r.stdout, r.stderr)
    for shard in ("q1", "q2"):
        assert sql(p, shard, f"SELECT state FROM messages WHERE id = {msgs[shard]['friend']}") == "1"
    r = ctl_raw(p, "reset", "--id", str(msgs["q2"]["friend"]))
    assert r.returncode == 1 and "does not exist or is not in ROUTING/DELIVERING" in r.stderr, r.stderr


def test_reap_once_reaps_every_shard(p, msgs):
    rc, reaped, err = ctl_json(p, "reap", "--once")
    assert rc == 0, err
    assert [s["name"] for s in reaped["shards"]] == ["q1", "q2"], reaped
    assert all(s["ok"] and "pass" in s for s in reaped["shards"]), reaped
    text = ctl_raw(p, "reap", "--once").stdout
    assert "shard q1:" in text and "shard q2:" in text and "all shards:" in text, text


def test_delete_acts_on_both_shards(p, msgs):
    r = ctl_raw(p, "delete", "--sender", "friend@ok.example", "--state", "RECEIVED")
    assert r.returncode == 0 and "deleted 2 of 2" in r.stdout, (r.stdout, r.stderr)
    for shard in ("q1", "q2"):
        assert sql(p, shard, f"SELECT count(*) FROM messages WHERE id = {msgs[shard]['friend']}") == "0"


@pytest.fixture
def q2_unreachable(p):
    p.pg.psql("ALTER DATABASE wsmtp_q2 ALLOW_CONNECTIONS false")
    p.pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'wsmtp_q2'")
    try:
        yield
    finally:
        p.pg.psql("ALTER DATABASE wsmtp_q2 ALLOW_CONNECTIONS true")


def test_an_unreachable_shard_is_reported_and_the_other_still_covered(p, msgs, q2_unreachable):
    rc, q, err = ctl_json(p, "queue")
    assert rc == 3 and "shard q2 unreachable" in err, (rc, err)
    shards = {s["name"]: s for s in q["shards"]}
    assert shards["q1"]["ok"] and not shards["q2"]["reachable"], shards
    assert states(q)["ROUTED"] == 1 and states(q) == states(shards["q1"]), q
    r = ctl_raw(p, "list")
    assert r.returncode == 3 and str(msgs["q1"]["deferred"]) in r.stdout, (r.stdout, r.stderr)
    assert str(msgs["q2"]["deferred"]) not in r.stdout, r.stdout
    r = ctl_raw(p, "hold", "--state", "ROUTED")
    assert r.returncode == 3 and "held 1 of 1" in r.stdout and "shard q2 unreachable" in r.stderr, (r.stdout, r.stderr)
    r = ctl_raw(p, "show", str(msgs["q2"]["deferred"]))
    assert r.returncode == 3 and "shard q2 unreachable" in r.stderr, r.stderr
    rc, status, err = ctl_json(p, "db", "status")
    dbs = {d["name"]: d for d in status["databases"]}
    assert rc == 3 and not dbs["q2"]["reachable"] and dbs["q1"]["ok"] and dbs["directory"]["ok"], (rc, status)
    assert "shard q2: unreachable" in err, err
    assert ctl_raw(p, "release", "--state", "ROUTED").returncode == 3


def test_a_shard_whose_statement_fails_is_reported_and_the_other_still_acts(p, msgs):
    sql(p, "q2", "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                 "$$BEGIN RAISE EXCEPTION 'refused for the test'; END$$; "
                 "CREATE TRIGGER refuse BEFORE UPDATE ON messages FOR EACH ROW EXECUTE FUNCTION refuse()")
    try:
        r = ctl_raw(p, "hold", "--state", "ROUTED")
        assert r.returncode == 1 and "held 1 of 1" in r.stdout, (r.stdout, r.stderr)
        assert "shard q2: database error" in r.stderr and "refused for the test" in r.stderr, r.stderr
        assert sql(p, "q1", f"SELECT held FROM messages WHERE id = {msgs['q1']['deferred']}") == "t"
        assert sql(p, "q2", f"SELECT held FROM messages WHERE id = {msgs['q2']['deferred']}") == "f"
    finally:
        sql(p, "q2", "DROP TRIGGER refuse ON messages; DROP FUNCTION refuse()")
    assert "released 1 of 2" in ctl_raw(p, "release", "--state", "ROUTED").stdout  # q2's was never held


def test_a_shard_without_the_schema_is_reported(p, msgs):
    sql(p, "q2", "ALTER TABLE messages RENAME TO messages_away")
    try:
        r = ctl_raw(p, "queue")
        assert r.returncode == 1 and "shard q2: its database has no WSMTP schema" in r.stderr, r.stderr
        assert "\n  q1 " in r.stdout, r.stdout
    finally:
        sql(p, "q2", "ALTER TABLE messages_away RENAME TO messages")


def test_a_shard_claimed_as_another_is_reported(p, msgs):
    sql(p, "q2", "UPDATE shard_identity SET name = 'q7', shard_id = 7")
    try:
        rc, status, err = ctl_json(p, "db", "status")
        dbs = {d["name"]: d for d in status["databases"]}
        assert rc == 1 and not dbs["q2"]["ok"] and dbs["q2"]["identity"] == {"name": "q7", "id": 7}, (rc, status)
        assert 'its database is shard "q7" (id 7), not id 2' in err, err
        r = ctl_raw(p, "queue")
        assert r.returncode == 1 and "shard \"q2\" (id 2): its database is shard \"q7\"" in r.stderr, r.stderr
        assert "\n  q1 " in r.stdout and "not covered" in r.stdout, r.stdout
    finally:
        sql(p, "q2", "UPDATE shard_identity SET name = 'q2', shard_id = 2")
    assert ctl_raw(p, "db", "status").returncode == 0

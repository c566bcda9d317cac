"""End-to-end: wroute in a queue group of two shards (issue 17). The directory
is the database "wsmtp", the queue the databases of shards q1 and q2 on the
same throwaway server. Messages are put in state 1 straight into each shard
with SQL (this test is about the router, not the listener); one wroute routes
both shards, and everything it writes stays in the message's shard: the plan
(a mailbox, an alias, a list's bulk and expanded members), the report to the
list's bounce address, and one auto-reply per sender across both shards.
"""
import pytest
from pipeline import Pipeline, wait_until
from router_harness import quote, set_router_options

SENDER = "poster@remote.test"


def sql(p, db, statement):
    return p.pg.psql(statement, dbname=db)


def count(p, db, statement):
    return int(sql(p, db, statement) or 0)


def receive(p, db, sender, rcpts, n=1, to="ann@example.test"):
    """n messages in state 1 in the shard's database, through the schema (its
    identity's id range, the fairness trigger), as the listener would commit."""
    arr = "ARRAY[" + ",".join(quote(r) for r in rcpts) + "]::text[]"
    sql(p, db, f"""
        WITH m AS (INSERT INTO messages (envelope_from, client_addr, received_by)
                   SELECT {quote(sender)}, '192.0.2.7'::inet, 'shards-test' FROM generate_series(1, {n})
                   RETURNING id),
        r AS (INSERT INTO recipients (message_id, seq, address)
              SELECT m.id, x.ord - 1, x.a FROM m, unnest({arr}) WITH ORDINALITY AS x(a, ord)),
        b AS (INSERT INTO body_chunks (message_id, seq, data)
              SELECT id, 0, convert_to(E'To: {to}\\r\\nSubject: hi\\r\\n\\r\\nbody\\r\\n', 'UTF8') FROM m)
        SELECT 1;
        UPDATE messages SET state = 1 WHERE state = 0 AND received_by = 'shards-test';""")


@pytest.fixture(scope="module")
def p():
    with Pipeline(shards=2) as p:
        assert p.shards == {"q1": "wsmtp_q1", "q2": "wsmtp_q2"}
        p.add_domain()
        for user in ("ann", "bo", "carl", "lb"):
            p.add_mailbox(user)
        p.add_alias("al", f"carl@{p.domain}")
        d = p.domain
        p.ctl("mailing-list", "add", f"staff@{d}", "--owner", f"ann@{d}", "--bounce", f"lb@{d}",
              "--policy", "anyone")
        p.ctl("mailing-list", "add-member", f"staff@{d}", f"bo@{d}", "r1@remote.test", f"al@{d}", f"gone@{d}")
        p.ctl("autoreply", "set", f"ann@{d}", "--subject", "Away", "--body", "Back soon.")
        set_router_options(p, min_workers=1, max_workers=2)
        for db in p.shards.values():
            receive(p, db, SENDER, [f"ann@{d}", f"al@{d}", f"staff@{d}", f"nobody@{d}"], n=20)
            receive(p, db, "once@remote.test", [f"ann@{d}"])
        p.start("wroute")
        yield p


def routed(p, db):
    return count(p, db, "SELECT count(*) FROM messages WHERE state = 3")


def waiting(p, db):
    return count(p, db, "SELECT count(*) FROM messages WHERE state < 3")


def test_messages_of_both_shards_are_routed_in_their_shard(p):
    for db in p.shards.values():
        wait_until(lambda: waiting(p, db) == 0 and routed(p, db) >= 21, 60, what=f"routing in {db}")
    for i, db in enumerate(p.shards.values(), start=1):
        # Every message of the shard, generated ones included, has an id of its range.
        assert count(p, db, f"SELECT count(*) FROM messages WHERE id / 100000000000000 <> {i}") == 0
        assert count(p, db, "SELECT count(*) FROM deliveries d LEFT JOIN messages m ON m.id = d.message_id "
                            "WHERE m.id IS NULL") == 0
    # The directory holds no queue rows.
    assert count(p, "wsmtp", "SELECT (SELECT count(*) FROM messages) + (SELECT count(*) FROM deliveries)") == 0


def test_each_posts_plan_is_complete(p):
    d = p.domain
    for db in p.shards.values():
        wait_until(lambda: waiting(p, db) == 0, 60, what=f"routing in {db}")
        rows = sql(p, db, "SELECT recipient || ' ' || transport || ' ' || status || ' ' || "
                          "COALESCE(envelope_from_override, '-') FROM deliveries d JOIN messages m "
                          "ON m.id = d.message_id WHERE m.envelope_from = " + quote(SENDER) +
                          " GROUP BY 1 HAVING count(*) = 20 ORDER BY 1").splitlines()
        assert rows == sorted([
            f"ann@{d} maildir pending -",
            f"bo@{d} maildir pending lb@{d}",
            f"carl@{d} maildir pending -",  # the alias addressed directly wins over the list's copy
            f"gone@{d} bounce bounced lb@{d}",
            f"nobody@{d} bounce bounced -",
            f"r1@remote.test relay pending lb@{d}",
        ]), rows


def test_list_reports_are_created_in_the_posts_shard(p):
    d = p.domain
    for db in p.shards.values():
        wait_until(lambda: count(p, db, "SELECT count(*) FROM messages WHERE received_by = 'wroute-dsn' "
                                        "AND state = 3") == 20, 60, what=f"the list reports in {db}")
        assert count(p, db, f"SELECT count(*) FROM deliveries WHERE recipient = 'gone@{d}' "
                            "AND dsn_message_id IS NULL") == 0


def test_one_auto_reply_per_sender_across_both_shards(p):
    replies = lambda sender: sum(count(p, db, "SELECT count(*) FROM messages m JOIN recipients r ON "  # noqa: E731
                                              "r.message_id = m.id WHERE m.received_by = 'wroute' "
                                              f"AND r.address = {quote(sender)}")
                                 for db in p.shards.values())
    for db in p.shards.values():
        wait_until(lambda: waiting(p, db) == 0, 60, what=f"routing in {db}")
    assert replies(SENDER) == 1
    assert replies("once@remote.test") == 1
    assert count(p, "wsmtp", "SELECT count(*) FROM autoreply_sent") == 2
    for db in p.shards.values():
        assert count(p, db, "SELECT count(*) FROM autoreply_sent") == 0

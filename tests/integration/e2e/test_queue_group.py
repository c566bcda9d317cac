"""The queue group end to end (issue 17): the whole pipeline on a directory
database and two queue shards, with real clients (smtplib) and the mail read in
the Maildirs.

- Each message lives in one shard from receipt to DONE: the shard its queue id
  names holds the message and its deliveries; a DSN made from it is created
  there too; the directory's queue tables stay empty.
- A shard's PostgreSQL crashes (SIGKILL of its postmaster) in the middle of a
  flood: intake goes on through the other shard, and once the shard is back
  every message answered 250 is delivered exactly once and nothing else is.
- A shard is a primary with a synchronous standby: the primary is SIGKILLed
  under load and the standby promoted (pg_ctl promote, as Patroni would): every
  250 is delivered exactly once, and nothing delivered was answered anything
  but 250.
"""
import time

from pipeline import Pipeline, wait_until
from smtp_flood import Flood, delivered_copies

SPAN = 10 ** 14  # ids per shard: common/queue_id.h
USERS = ("alice", "bob")


def setup_mail(p):
    p.add_domain()
    for u in USERS:
        p.add_mailbox(u)
    p.add_alias("all", *[f"{u}@{p.domain}" for u in USERS])


def shard_name(qid):
    return f"q{qid // SPAN}"


def count(p, shard, sql):
    return int(p.shard_sql(shard, sql))


def delivered_tokens(p):
    return {token for token, _ in delivered_copies(p, USERS)}


def wait_delivered(p, flood, timeout):
    expected = set(flood.accepted)
    wait_until(lambda: expected <= delivered_tokens(p), timeout, interval=0.5,
               what=f"{len(expected)} accepted messages in the Maildirs")


def check_exactly_once(p, flood):
    copies = delivered_copies(p, USERS)
    found = {token for token, _ in copies}
    lost = sorted(set(flood.accepted) - found)
    assert not lost, f"answered 250 but never delivered: {lost[:10]}"
    twice = sorted(key for key, n in copies.items() if n > 1)
    assert not twice, f"delivered more than once to a mailbox: {twice[:10]}"
    unanswered = sorted(found - set(flood.accepted))
    assert not unanswered, (f"delivered but not answered 250: {unanswered[:10]} "
                            f"(refused {len(flood.refused)}, in doubt {len(flood.in_doubt)})")


def test_a_message_lives_in_one_shard_from_receipt_to_done():
    with Pipeline(shards=2) as p:
        setup_mail(p)
        p.start_all()
        flood = Flood(p, [f"alice@{p.domain}", f"bob@{p.domain}", f"all@{p.domain}"], clients=2)
        flood.start()
        wait_until(lambda: len(flood.accepted) >= 60, 60, what="60 messages accepted")
        flood.stop()
        wait_delivered(p, flood, 60)
        check_exactly_once(p, flood)
        used = {shard_name(q) for q in flood.accepted.values()}
        assert used == {"q1", "q2"}, f"both shards take new mail: {used}"
        for token, qid in flood.accepted.items():
            home = shard_name(qid)
            other = "q2" if home == "q1" else "q1"
            assert p.shard_sql(home, f"SELECT state FROM messages WHERE id = {qid}") == "5", token
            assert count(p, home, f"SELECT count(*) FROM deliveries WHERE message_id = {qid} "
                                  "AND status = 'delivered'") >= 1, token
            assert count(p, other, f"SELECT count(*) FROM messages WHERE id = {qid}") == 0, token
        assert p.pg.psql("SELECT count(*) FROM messages", "wsmtp") == "0"
        assert p.pg.psql("SELECT count(*) FROM deliveries", "wsmtp") == "0"

        # A DSN made from a message is created in the message's shard.
        p.kill("wdeliver")
        with p.smtp() as s:
            s.ehlo("client.example")
            s.mail(f"alice@{p.domain}")
            s.rcpt(f"bob@{p.domain}")
            code, reply = s.data("Subject: to be bounced\r\n\r\nx\r\n")
        assert code == 250, reply
        newest = int(reply.decode().rsplit(" ", 1)[1])
        home = shard_name(newest)
        wait_until(lambda: p.shard_sql(home, f"SELECT state FROM messages WHERE id = {newest}") == "3", 30,
                   what="the message routed")
        p.ctl("bounce", str(newest))
        dsn = int(p.shard_sql(home, "SELECT max(id) FROM messages WHERE envelope_from = ''"))
        assert shard_name(dsn) == home, f"the DSN {dsn} of {newest} is in the message's shard"
        p.start("wdeliver")
        wait_until(lambda: any(b"to be bounced" in open(f, "rb").read() for f in p.maildir_files("alice")), 30,
                   what="the DSN in alice's Maildir")


def test_a_shard_crash_in_a_flood_loses_nothing_and_intake_goes_on():
    with Pipeline(shards=2, shard_servers=True) as p:
        setup_mail(p)
        p.start_all()
        flood = Flood(p, [f"alice@{p.domain}", f"bob@{p.domain}"]).start()
        try:
            wait_until(lambda: len(flood.accepted) >= 50, 60, what="mail flowing")
            p.shard_pg["q2"].kill_postmaster()
            crashed = time.time()
            time.sleep(6)
            during = flood.accepted_since(crashed + 1.5)
            assert len(during) >= 10, f"intake went on through q1 while q2 was down: {len(during)} accepted"
            assert {shard_name(q) for q in during.values()} == {"q1"}, "nothing placed on the crashed shard"
            p.shard_pg["q2"].start_after_crash()
            back = time.time()
            wait_until(lambda: any(shard_name(q) == "q2" for q in flood.accepted_since(back).values()), 30,
                       what="q2 taking new mail again after it came back")
        finally:
            flood.stop()
        wait_delivered(p, flood, 120)
        time.sleep(2)
        check_exactly_once(p, flood)


def test_failover_to_a_synchronous_standby_loses_nothing():
    with Pipeline(shards=2, sync_standby=("q2",)) as p:
        setup_mail(p)
        p.start_all()
        flood = Flood(p, [f"alice@{p.domain}", f"bob@{p.domain}"]).start()
        try:
            wait_until(lambda: sum(shard_name(q) == "q2" for q in flood.accepted.values()) >= 30, 60,
                       what="mail flowing into q2")
            p.shard_pg["q2"].kill_postmaster()
            time.sleep(1)
            p.standbys["q2"].promote()
            promoted = time.time()
            wait_until(lambda: any(shard_name(q) == "q2" for q in flood.accepted_since(promoted).values()), 30,
                       what="q2 (its promoted standby) taking new mail")
        finally:
            flood.stop()
        wait_delivered(p, flood, 120)
        time.sleep(2)
        check_exactly_once(p, flood)
        assert not flood.in_doubt, f"every client got an answer: {sorted(flood.in_doubt)[:5]}"

"""The listener in a queue group of two shards (issue 17).

Pipeline(shards=2): the directory in database "wsmtp", shards q1 (weight 1)
and q2 (weight 3) in wsmtp_q1 and wsmtp_q2 on the same throwaway server; only
wsmtp runs (the messages stay in state 1). Every 250's queue id is in exactly
one shard, the one it names, and the shards get mail in proportion to their
weights; RCPT is checked against the directory. Then q2 has a real outage
(connections refused, its backends terminated) while four clients send: intake
goes on through q1 within about a second, no 250 is lost, and once q2 accepts
connections again it takes mail again.
"""
import re
import smtplib
import threading
import time

import pytest
from pipeline import Pipeline, wait_until

SPAN = 10**14
QUEUED = re.compile(r"queued as (\d+)")


@pytest.fixture(scope="module")
def p():
    with Pipeline(shards=2) as p:
        p.add_domain()
        p.add_mailbox("alice")
        with open(p.config) as f:
            text = f.read()
        text = text.replace("[shard q2]\nid = 2\nweight = 1\n", "[shard q2]\nid = 2\nweight = 3\n")
        assert "weight = 3" in text
        with open(p.config, "w") as f:
            f.write(text)
        p.start("wsmtp")
        yield p


def send_one(p, n):
    """One message on its own connection: (code, queue id or None)."""
    try:
        with p.smtp(timeout=30) as s:
            s.ehlo("client.test")
            s.mail(f"sender@{p.domain}")
            code, _ = s.rcpt(f"alice@{p.domain}")
            if code != 250:
                return code, None
            code, text = s.data(f"Subject: shard test {n}\r\n\r\nbody {n}\r\n".encode())
            m = QUEUED.search(text.decode())
            return code, int(m.group(1)) if code == 250 and m else None
    except (smtplib.SMTPException, OSError) as e:
        return str(e), None


def ids_in(p, name, ids):
    if not ids:
        return set()
    out = p.pg.psql(f"SELECT id FROM messages WHERE state >= 1 AND id IN ({','.join(map(str, ids))})",
                    p.shards[name])
    return {int(x) for x in out.split()}


def assert_each_in_its_shard(p, ids):
    in_q1, in_q2 = ids_in(p, "q1", ids), ids_in(p, "q2", ids)
    assert not in_q1 & in_q2
    assert in_q1 | in_q2 == set(ids), f"250 but in no shard: {sorted(set(ids) - in_q1 - in_q2)}"
    assert all(i // SPAN == 1 for i in in_q1)
    assert all(i // SPAN == 2 for i in in_q2)
    return in_q1, in_q2


def test_messages_land_in_one_shard_by_weight(p):
    results = [send_one(p, n) for n in range(200)]
    assert all(code == 250 for code, _ in results), results
    ids = [qid for _, qid in results]
    in_q1, in_q2 = assert_each_in_its_shard(p, ids)
    # Weight 1 : 3, so q2 expects 150 of 200 (a standard deviation is ~6).
    assert 120 <= len(in_q2) <= 180, (len(in_q1), len(in_q2))
    # The directory holds no mail.
    assert p.pg.psql("SELECT count(*) FROM messages", "wsmtp") == "0"
    assert re.search(r"msg=2\d{14} accepted .* shard=q2", p.log("wsmtp"))


def test_recipients_are_checked_against_the_directory(p):
    with p.smtp() as s:
        s.ehlo("client.test")
        s.mail(f"sender@{p.domain}")
        assert s.rcpt(f"nobody@{p.domain}")[0] == 550
        assert s.rcpt(f"alice@{p.domain}")[0] == 250


def test_a_shard_outage_moves_intake_to_the_other_shard(p):
    attempts = []  # (started, code, queue id, answered)
    lock = threading.Lock()
    stop = threading.Event()

    def client(k):
        n = 0
        while not stop.is_set():
            started = time.time()
            code, qid = send_one(p, f"{k}-{n}")
            with lock:
                attempts.append((started, code, qid, time.time()))
            n += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: sum(1 for a in attempts if a[1] == 250) >= 20, 30, what="mail flowing")
        # A real outage of q2's database only: no new connections, the open ones cut.
        p.pg.psql("ALTER DATABASE wsmtp_q2 ALLOW_CONNECTIONS false")
        p.pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'wsmtp_q2'")
        outage = time.time()
        time.sleep(4)
        p.pg.psql("ALTER DATABASE wsmtp_q2 ALLOW_CONNECTIONS true")
        restored = time.time()
        wait_until(lambda: any(t > restored and q and q // SPAN == 2 for t, _, q, _ in attempts), 15,
                   what="q2 taking mail again")
    finally:
        stop.set()
        for t in threads:
            t.join()
    # Messages begun a second or more into the outage and answered before its end.
    during = [a for a in attempts if outage + 1 < a[0] and a[3] < restored]
    accepted = [q for _, c, q, _ in during if c == 250]
    # Intake goes on through q1, and only q1.
    assert len(accepted) >= 10, during
    assert all(q // SPAN == 1 for q in accepted), during
    assert all(c == 250 for _, c, _, _ in during), during
    # The other answers are temporary: nothing was refused for good.
    assert all(c == 250 or (isinstance(c, int) and 400 <= c < 500) for _, c, _, _ in attempts), attempts
    # No 250 is lost: every one is in its shard, committed.
    assert_each_in_its_shard(p, [q for _, c, q, _ in attempts if c == 250])
    log = p.log("wsmtp")
    assert "shard q2 leaves the rotation" in log
    assert "shard q2 rejoins the rotation" in log

"""Chaos: the whole pipeline under a steady stream of mail from several smtplib
clients while, at random moments, wsmtp, wroute, wdeliver and wreaper are
SIGKILLed and restarted, PostgreSQL itself is restarted (fast and immediate), and
the outbound relay (Postfix's smtp-sink, for mail to a remote domain) is stopped
for a while.

Every client-side outcome is classified:
  accepted  - the client got 250 after the final dot: must be delivered exactly once
  refused   - the client got a 4xx/5xx reply: must never be delivered
  in doubt  - the connection died after the final dot, before a reply: the one
              window SMTP cannot close (RFC 1047); delivered at most once
Relayed copies must reach the relay at least once; a copy the relay accepted
just before wdeliver was killed, and before the database heard of it, is sent
again (the same RFC 1047 window, towards the relay): such repeats are counted
and reported, not hidden. At the end the queue must drain to DONE without
operator action, and every
daemon that was not killed must still be running (nobody exits for an outage).
Bounded: CHAOS_SECONDS of chaos, then at most DRAIN_SECONDS to drain. The
whole module runs twice: on one database, and on a directory with two queue
shards (issue 17).
"""
import os
import random
import re
import signal
import smtplib
import socket
import threading
import time

import pytest
from deliver_harness import set_section, sql
from deliver_relays import SmtpSink
from pipeline import Pipeline, wait_until

CHAOS_SECONDS = int(os.environ.get("WSMTP_CHAOS_SECONDS", "45"))
DRAIN_SECONDS = 150
CLIENTS = 4
USERS = ("alice", "bob", "carol")
REMOTE = "far@remote.example"
DAEMONS = ("wsmtp", "wroute", "wdeliver", "wreaper")


class Outcomes:
    def __init__(self):
        self.lock = threading.Lock()
        self.accepted, self.refused, self.in_doubt = {}, set(), set()
        self.attempts = 0

    def add(self, kind, token, users=None):
        with self.lock:
            if kind == "accepted":
                self.accepted[token] = users
            elif kind == "refused":
                self.refused.add(token)
            elif kind == "in_doubt":
                self.in_doubt.add(token)


def client(p, n, stop, out, rng):
    seq = 0
    conn = None
    while not stop.is_set():
        try:
            if conn is None:
                conn = smtplib.SMTP("127.0.0.1", p.port, timeout=10)
                conn.ehlo(f"client{n}.example")
            seq += 1
            token = f"chaos-{n}-{seq:06d}"
            target = rng.choice(USERS + ("all", "remote"))
            users = list(USERS) if target == "all" else [REMOTE] if target == "remote" else [target]
            rcpt = REMOTE if target == "remote" else f"{target}@{p.domain}"
            body = f"Subject: {token}\r\nMessage-ID: <{token}@t>\r\n\r\n{token}\r\n" + ("y" * 76 + "\r\n") * rng.randint(0, 250)
            with out.lock:
                out.attempts += 1
            conn.mail(f"client{n}@clients.example")
            code, _ = conn.rcpt(rcpt)
            if code != 250:
                conn.rset()
                continue
            try:
                code, _ = conn.data(body)
            except smtplib.SMTPDataError:
                out.add("refused", token)
                continue
            except (smtplib.SMTPServerDisconnected, OSError):
                out.add("in_doubt", token)
                raise
            out.add("accepted" if code == 250 else "refused", token, users)
        except (smtplib.SMTPException, OSError, socket.timeout):
            try:
                conn and conn.close()
            except Exception:
                pass
            conn = None
            time.sleep(0.05)
    if conn:
        try:
            conn.quit()
        except Exception:
            pass


def copies(p):
    found = {}
    for u in USERS:
        for f in p.maildir_files(u):
            with open(f, "rb") as fh:
                m = re.search(rb"Subject: (chaos-\d+-\d+)", fh.read())
            key = (m.group(1).decode(), u)
            found[key] = found.get(key, 0) + 1
    return found


def relayed(sink):
    found = {}
    for _, rcpts, raw in sink.messages():
        m = re.search(rb"Subject: (chaos-\d+-\d+)", raw)
        if m:
            found[m.group(1).decode()] = found.get(m.group(1).decode(), 0) + 1
    return found


@pytest.fixture(scope="module", params=[0, 2], ids=["one-database", "two-shards"])
def env(request):
    # Once on the one-server layout, once on a directory and two queue shards
    # (on the same server, so a PostgreSQL restart takes all three).
    with Pipeline(lease_time="3s", shards=request.param) as p:
        p.add_domain()
        for u in USERS:
            p.add_mailbox(u)
        p.add_alias("all", *[f"{u}@{p.domain}" for u in USERS])
        # Loopback is trusted here so the clients may relay to the remote domain.
        with open(p.config) as f:
            text = f.read()
        with open(p.config, "w") as f:
            f.write(text.replace("[listener]\n", "[listener]\ntrusted_networks = 127.0.0.0/8\n"))
        # Short retry and destination backoff delays, so the drain after the
        # chaos is bounded by the pipeline, not by a backoff timer.
        set_section(p, "deliver", transports="maildir, relay", retry_base="1s", retry_max="2s",
                    destination_backoff_base="2s", destination_backoff_max="4s")
        sink = SmtpSink(p.root, "chaos")
        try:
            sql(p, "INSERT INTO relay_pools (name, down_time) VALUES ('default', '1 second')")
            sql(p, f"INSERT INTO relays (pool, host, port) VALUES ('default', '127.0.0.1', {sink.port})")
            p.start_all()
            yield p, sink
        finally:
            sink.stop()


@pytest.fixture(scope="module")
def run(env):
    """Mail flows through the chaos, then the queue drains. Returns the client-side
    outcomes, the expected local copies and relayed tokens, and what arrived."""
    p, sink = env
    rng = random.Random(int(os.environ.get("WSMTP_CHAOS_SEED", "7")))
    out, stop = Outcomes(), threading.Event()
    threads = [threading.Thread(target=client, args=(p, i, stop, out, random.Random(i))) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    events = {"kill": 0, "pg_fast": 0, "pg_immediate": 0, "relay_stop": 0}
    end = time.time() + CHAOS_SECONDS
    while time.time() < end:
        time.sleep(rng.uniform(0.5, 2.0))
        action = rng.choice(DAEMONS + DAEMONS + ("pg_fast", "pg_immediate", "relay_stop"))
        if action == "relay_stop":
            sink.stop_backend()
            time.sleep(rng.uniform(0.5, 2.0))
            sink.start()
            events[action] += 1
        elif action.startswith("pg_"):
            p.pg.restart(action[3:])
            events[action] += 1
        else:
            p.kill(action, signal.SIGKILL)
            time.sleep(rng.uniform(0.0, 0.5))
            p.start(action)
            events["kill"] += 1
    stop.set()
    for t in threads:
        t.join(timeout=30)

    expected = {(t, u) for t, us in out.accepted.items() for u in us if u != REMOTE}
    expected_remote = {t for t, us in out.accepted.items() if REMOTE in us}

    def drained():
        q = p.queue()
        return all(q[s]["count"] == 0 for s in ("RECEIVED", "ROUTING", "ROUTED", "DELIVERING")) and \
            expected <= set(copies(p)) and expected_remote <= set(relayed(sink))
    try:
        wait_until(drained, DRAIN_SECONDS, interval=1, what="the queue to drain after the chaos")
    except AssertionError:
        for db in p.shards.values() or ["wsmtp"]:
            print(f"{db}: undrained messages:\n" + p.pg.psql(
                "SELECT id, state, held, delivering_at, next_attempt_at, lease_owner, lease_expires, last_error "
                "FROM messages WHERE state BETWEEN 1 AND 4 LIMIT 20", db))
            print(f"{db}: their deliveries:\n" + p.pg.psql(
                "SELECT d.* FROM deliveries d JOIN messages m ON m.id = d.message_id "
                "WHERE m.state BETWEEN 1 AND 4 LIMIT 20", db))
            print(f"{db}: destination backoff:\n" + p.pg.psql("SELECT * FROM destination_backoff", db))
        print("advisory locks:\n" + sql(p, "SELECT pid, classid, objid FROM pg_locks WHERE locktype = 'advisory'"))
        raise
    time.sleep(2)
    found = copies(p)
    remote = relayed(sink)
    tokens = {t for t, _ in found} | set(remote)
    remote_repeats = sum(n - 1 for n in remote.values() if n > 1)
    print(f"chaos: {CHAOS_SECONDS}s, daemon kills={events['kill']} pg restarts fast={events['pg_fast']} "
          f"immediate={events['pg_immediate']} relay stops={events['relay_stop']}")
    print(f"chaos: relayed accepted={len(expected_remote)} at the relay={len(remote)} "
          f"repeated to the relay after a kill={remote_repeats}")
    print(f"chaos: sent={out.attempts} 250s={len(out.accepted)} refused={len(out.refused)} "
          f"in-doubt={len(out.in_doubt)} (delivered {len(tokens & out.in_doubt)}) expected copies={len(expected)} "
          f"delivered copies={sum(found.values())}")
    return {"out": out, "expected": expected, "expected_remote": expected_remote, "found": found,
            "remote": remote, "tokens": tokens}


def test_enough_mail_got_through_to_prove_anything(run):
    assert len(run["out"].accepted) > 50, "too little mail got through to prove anything"


def test_no_accepted_local_copy_is_lost(run):
    lost = sorted(run["expected"] - set(run["found"]))
    assert not lost, f"lost: {lost[:10]}"


def test_no_accepted_relayed_message_is_lost(run):
    remote_lost = sorted(run["expected_remote"] - set(run["remote"]))
    assert not remote_lost, f"relayed mail lost: {remote_lost[:10]}"


def test_no_local_copy_is_duplicated(run):
    duplicates = sorted(k for k, n in run["found"].items() if n > 1)
    assert not duplicates, f"duplicates: {duplicates[:10]}"


def test_refused_mail_is_never_delivered(run):
    refused_delivered = sorted(run["tokens"] & run["out"].refused)
    assert not refused_delivered, f"refused but delivered: {refused_delivered[:10]}"


def test_nothing_is_delivered_that_was_not_sent_to_completion(run):
    out = run["out"]
    unknown = sorted(run["tokens"] - set(out.accepted) - out.in_doubt)
    assert not unknown, f"delivered but never sent to completion: {unknown[:10]}"


@pytest.mark.parametrize("name", DAEMONS)
def test_no_daemon_exits_for_an_outage(env, run, name):
    p = env[0]
    assert p.alive(name), f"{name} exited on its own:\n{p.log(name)[-3000:]}"

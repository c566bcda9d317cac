#!/usr/bin/env python3
"""Chaos: the whole pipeline under a steady stream of mail from several smtplib
clients while, at random moments, wsmtp, wroute, wdeliver and wreaper are
SIGKILLed and restarted and PostgreSQL itself is restarted (fast and immediate).

Every client-side outcome is classified:
  accepted  - the client got 250 after the final dot: must be delivered exactly once
  refused   - the client got a 4xx/5xx reply: must never be delivered
  in doubt  - the connection died after the final dot, before a reply: the one
              window SMTP cannot close (RFC 1047); delivered at most once
and at the end the queue must drain to DONE without operator action, and every
daemon that was not killed must still be running (nobody exits for an outage).
Bounded: CHAOS_SECONDS of chaos, then at most DRAIN_SECONDS to drain.
"""
import os
import random
import re
import signal
import smtplib
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "harness"))
from pipeline import Pipeline, wait_until  # noqa: E402

CHAOS_SECONDS = int(os.environ.get("WSMTP_CHAOS_SECONDS", "45"))
DRAIN_SECONDS = 150
CLIENTS = 4
USERS = ("alice", "bob", "carol")
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
            target = rng.choice(USERS + ("all",))
            users = list(USERS) if target == "all" else [target]
            body = f"Subject: {token}\r\nMessage-ID: <{token}@t>\r\n\r\n{token}\r\n" + "y" * rng.randint(0, 20000)
            with out.lock:
                out.attempts += 1
            conn.mail(f"client{n}@clients.example")
            code, _ = conn.rcpt(f"{target}@{p.domain}")
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


def main():
    rng = random.Random(int(os.environ.get("WSMTP_CHAOS_SEED", "7")))
    with Pipeline(lease_time="3s") as p:
        p.add_domain()
        for u in USERS:
            p.add_mailbox(u)
        p.add_alias("all", *[f"{u}@{p.domain}" for u in USERS])
        p.start_all()

        out, stop = Outcomes(), threading.Event()
        threads = [threading.Thread(target=client, args=(p, i, stop, out, random.Random(i))) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        events = {"kill": 0, "pg_fast": 0, "pg_immediate": 0}
        end = time.time() + CHAOS_SECONDS
        while time.time() < end:
            time.sleep(rng.uniform(0.5, 2.0))
            action = rng.choice(DAEMONS + DAEMONS + ("pg_fast", "pg_immediate"))
            if action.startswith("pg_"):
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

        expected = {(t, u) for t, us in out.accepted.items() for u in us}

        def drained():
            q = p.queue()
            return all(q[s]["count"] == 0 for s in ("RECEIVED", "ROUTING", "ROUTED", "DELIVERING")) and \
                expected <= set(copies(p))
        wait_until(drained, DRAIN_SECONDS, interval=1, what="the queue to drain after the chaos")
        time.sleep(2)
        found = copies(p)
        tokens = {t for t, _ in found}
        lost = sorted(expected - set(found))
        duplicates = sorted(k for k, n in found.items() if n > 1)
        refused_delivered = sorted(tokens & out.refused)
        unknown = sorted(tokens - set(out.accepted) - out.in_doubt)
        in_doubt_delivered = len(tokens & out.in_doubt)
        print(f"chaos: {CHAOS_SECONDS}s, daemon kills={events['kill']} pg restarts fast={events['pg_fast']} "
              f"immediate={events['pg_immediate']}")
        print(f"chaos: sent={out.attempts} 250s={len(out.accepted)} refused={len(out.refused)} "
              f"in-doubt={len(out.in_doubt)} (delivered {in_doubt_delivered}) expected copies={len(expected)} "
              f"delivered copies={sum(found.values())} duplicates={len(duplicates)} lost={len(lost)}")
        assert len(out.accepted) > 50, "too little mail got through to prove anything"
        assert not lost, f"lost: {lost[:10]}"
        assert not duplicates, f"duplicates: {duplicates[:10]}"
        assert not refused_delivered, f"refused but delivered: {refused_delivered[:10]}"
        assert not unknown, f"delivered but never sent to completion: {unknown[:10]}"
        for name in DAEMONS:
            assert p.alive(name), f"{name} exited on its own:\n{p.log(name)[-3000:]}"


if __name__ == "__main__":
    main()

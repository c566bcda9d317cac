#!/usr/bin/env python3
"""Routing throughput benchmark (issue 4), run on demand, not by ctest.

Measures messages/s from state 1 (RECEIVED) to state 3 (ROUTED) for
single-recipient mail, 10-recipient mail and mail to a 1,000-member list, with
wroute at 1 and at 4 workers (min_workers = max_workers), on a throwaway
PostgreSQL with durable commits (fsync on, as in production; --no-fsync for the
test harness's setting). The backlog (4 KiB messages) is loaded in bulk before
wroute starts, so the figure is the router's, not the listener's. A run's time
is from the first claim (the database's routing_at of the earliest message) to
the first poll, every 20 ms, that finds nothing left in states 1 and 2 (the
database's clock_timestamp()): the routers' commit times are not in the rows
(a batch's rows all carry its transaction's start time), so the end is taken
by polling, which can only make the figure lower, never higher.

The peer measured in the same run is the listener: Postfix's smtp-source sends
4 KiB messages to wsmtp over 20 sessions (the listener benchmark's main case),
with 1 and with 10 recipients, and the acceptance rate is messages / wall-clock
time of the smtp-source run. The report gives each routing rate as a ratio to
the listener's rate for the same kind of mail (a list post is a 1-recipient
message to the listener); routing must stay well above 1.

    WSMTP_BIN=build tests/bench/router_throughput.py [--scale 0.5] [--rounds 3] [--no-fsync]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
from pipeline import Pipeline  # noqa: E402
from router_harness import bulk_receive, count, set_router_options, sql  # noqa: E402

BODY = 4096


def listener_rate(p, n, rcpts):
    """smtp-source names its recipients 1u0@, 2u0@, ...: a catch-all makes
    them known to the listener for the run."""
    tool = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    sql(p, f"INSERT INTO catchalls (domain, target) VALUES ('{p.domain}', 'u0@{p.domain}')")
    start = time.time()
    subprocess.run([tool, "-d", "-s", "20", "-l", str(BODY), "-m", str(n), "-r", str(rcpts),
                    "-f", "bench@client.example", "-t", f"u0@{p.domain}", f"127.0.0.1:{p.port}"], check=True,
                   timeout=600, stdout=subprocess.DEVNULL)
    elapsed = time.time() - start
    accepted = count(p, "SELECT count(*) FROM messages WHERE state = 1")
    if accepted < n:
        raise AssertionError(f"listener accepted {accepted} of {n} messages")
    sql(p, "DELETE FROM messages; DELETE FROM catchalls")
    return n / elapsed


def drained_at(p):
    """The database's clock when nothing is left to route, or None."""
    row = sql(p, "SELECT count(*), extract(epoch FROM clock_timestamp()) FROM messages WHERE state IN (1, 2)")
    left, now = row.split("|")
    return float(now) if int(left) == 0 else None


def route_run(p, n, rcpts, label):
    sql(p, "DELETE FROM messages; DELETE FROM route_fairness")
    bulk_receive(p, n, "bench@client.example", rcpts, body_size=BODY)
    sql(p, "VACUUM ANALYZE")  # the previous run's deletions must not be vacuumed during this one
    sql(p, "CHECKPOINT")
    p.start("wroute")
    try:
        deadline = time.time() + 900
        end = None
        while end is None:
            if time.time() > deadline:
                raise AssertionError(f"{label}: not routed within 900 s")
            time.sleep(0.02)
            end = drained_at(p)
    finally:
        p.kill("wroute", sig=15)
    routed = count(p, "SELECT count(*) FROM messages WHERE state = 3")
    if routed != n:
        raise AssertionError(f"{label}: {routed} of {n} messages routed")
    start = float(sql(p, "SELECT extract(epoch FROM min(routing_at)) FROM messages"))
    secs = end - start
    deliveries = count(p, "SELECT count(*) FROM deliveries")
    return n / secs, deliveries / secs


def set_workers(p, workers):
    """[router] min_workers = max_workers = workers (replacing an earlier setting)."""
    with open(p.config) as f:
        text = f.read()
    for n in (1, 4):
        text = text.replace(f"min_workers = {n}\nmax_workers = {n}\n", "", 1)
    with open(p.config, "w") as f:
        f.write(text)
    set_router_options(p, min_workers=workers, max_workers=workers)


def one_round(p, counts):
    """The listener's rates, then every routing case against them; rows of
    (workers, label, msgs/s, deliveries/s, listener msgs/s)."""
    n1, n10, nlist = counts
    d = p.domain
    p.start("wsmtp")
    p.wait_for_port()
    accept = {1: listener_rate(p, n1, 1), 10: listener_rate(p, n10, 10)}
    p.kill("wsmtp", sig=15)
    print(f"listener: {accept[1]:.0f} msgs/s (1 rcpt), {accept[10]:.0f} msgs/s (10 rcpts)", flush=True)
    rows = []
    for workers in (1, 4):
        set_workers(p, workers)
        # A list post is one single-recipient message to the listener.
        for label, n, rcpts, peer in (("1 rcpt", n1, [f"u1@{d}"], 1),
                                      ("10 rcpts", n10, [f"u{i}@{d}" for i in range(1, 11)], 10),
                                      ("1,000-member list", nlist, [f"big@{d}"], 1)):
            msgs, deliveries = route_run(p, n, rcpts, label)
            rows.append((workers, label, msgs, deliveries, accept[peer]))
            print(f"{workers} worker(s), {label:18} {msgs:8.0f} msgs/s {deliveries:9.0f} deliveries/s "
                  f"ratio to listener {msgs / accept[peer]:6.2f}", flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the message counts")
    ap.add_argument("--rounds", type=int, default=3, help="repeat everything; medians are reported")
    ap.add_argument("--no-fsync", action="store_true", help="keep the test harness's fsync = off")
    args = ap.parse_args()
    counts = tuple(int(x * args.scale) for x in (6000, 2000, 100))
    with Pipeline(listener_extra="max_connection_rate = 0\nmax_connections_per_client = 500\n",
                  db_socket=True) as p:  # as on a single host
        if not args.no_fsync:
            with open(os.path.join(p.pg.datadir, "postgresql.conf"), "a") as conf:
                conf.write("fsync = on\nfull_page_writes = on\nsynchronous_commit = on\n")
            p.pg.restart()
        d = p.domain
        p.add_domain()
        sql(p, f"INSERT INTO mailboxes (address, domain, maildir) "
               f"SELECT 'u' || i || '@{d}', '{d}', '/m/u' || i FROM generate_series(0, 999) i;"
               f"INSERT INTO lists (address, domain, owner, bounce_address, posting_policy, list_id) "
               f"VALUES ('big@{d}', '{d}', 'u0@{d}', 'u0@{d}', 'anyone', 'big.{d}');"
               f"INSERT INTO list_members (list_address, member) SELECT 'big@{d}', 'u' || i || '@{d}' "
               f"FROM generate_series(0, 999) i")
        rounds = []
        for r in range(args.rounds):
            print(f"--- round {r + 1} of {args.rounds} (fsync {'off' if args.no_fsync else 'on'})", flush=True)
            rounds.append(one_round(p, counts))
        print(f"\nmedians of {args.rounds} rounds; the ratio is taken per round against that round's listener")
        print("workers  mail               msgs/s  deliveries/s  listener msgs/s  ratio-to-listener")
        for i, (workers, label, *_rest) in enumerate(rounds[0]):
            msgs = statistics.median(r[i][2] for r in rounds)
            deliveries = statistics.median(r[i][3] for r in rounds)
            peer = statistics.median(r[i][4] for r in rounds)
            ratio = statistics.median(r[i][2] / r[i][4] for r in rounds)
            print(f"{workers:7}  {label:18} {msgs:7.0f}  {deliveries:12.0f}  {peer:15.0f}  {ratio:17.2f}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Routing throughput benchmark (issue 4), run on demand, not by ctest.

Measures messages/s from state 1 (RECEIVED) to state 3 (ROUTED) for
single-recipient mail, 10-recipient mail and mail to a 1,000-member list, with
wroute at 1 and at 4 workers (min_workers = max_workers), on a throwaway
PostgreSQL. The rate is taken from the database's own timestamps: messages /
(last routed_at - first routing_at). The backlog is loaded in bulk before
wroute starts, so the figure is the router's, not the listener's.

The peer measured in the same run is the listener: Postfix's smtp-source
sends messages to wsmtp (4 sessions, 1 recipient) and the acceptance rate is
taken the same way (messages / (last received_at - first created_at)). The
report gives each routing rate as a ratio to it; routing must stay well above 1.

    WSMTP_BIN=build tests/bench/router_throughput.py [--scale 0.5]
"""
import argparse
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
from pipeline import Pipeline  # noqa: E402
from router_harness import bulk_receive, count, set_router_options, sql, wait_for  # noqa: E402


def rate(p, first_col, last_col, where):
    row = sql(p, f"SELECT count(*), extract(epoch FROM max({last_col}) - min({first_col})) FROM messages WHERE {where}")
    n, secs = row.split("|")
    return int(n), float(secs or 0)


def listener_rate(p, n):
    tool = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    subprocess.run([tool, "-d", "-s", "4", "-m", str(n), "-f", "bench@client.example", "-t", f"u0@{p.domain}",
                    f"127.0.0.1:{p.port}"], check=True, timeout=600)
    wait_for(lambda: count(p, "SELECT count(*) FROM messages WHERE state = 1") >= n, 60, "accepted messages")
    got, secs = rate(p, "created_at", "received_at", "state = 1")
    sql(p, "DELETE FROM messages")
    return got / secs


def route_run(p, workers, n, rcpts, label):
    sql(p, "DELETE FROM messages; DELETE FROM route_fairness")
    bulk_receive(p, n, "bench@client.example", rcpts)
    wroute = p.start("wroute")
    try:
        wait_for(lambda: count(p, "SELECT count(*) FROM messages WHERE state IN (1, 2)") == 0, 900, f"{label} routed")
    finally:
        p.kill("wroute", sig=15)
    got, secs = rate(p, "routing_at", "routed_at", "state = 3")
    deliveries = count(p, "SELECT count(*) FROM deliveries")
    return got / secs, deliveries / secs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the message counts")
    args = ap.parse_args()
    n1, n10, nlist = (int(x * args.scale) for x in (3000, 1000, 40))
    with Pipeline(listener_extra="max_connection_rate = 0\nmax_connections_per_client = 500\n") as p:
        d = p.domain
        p.add_domain()
        sql(p, f"INSERT INTO mailboxes (address, domain, maildir) "
               f"SELECT 'u' || i || '@{d}', '{d}', '/m/u' || i FROM generate_series(0, 999) i;"
               f"INSERT INTO lists (address, domain, owner, bounce_address, posting_policy, list_id) "
               f"VALUES ('big@{d}', '{d}', 'u0@{d}', 'u0@{d}', 'anyone', 'big.{d}');"
               f"INSERT INTO list_members (list_address, member) SELECT 'big@{d}', 'u' || i || '@{d}' "
               f"FROM generate_series(0, 999) i")
        p.start("wsmtp")
        accept = listener_rate(p, n1)
        p.kill("wsmtp", sig=15)
        print(f"listener acceptance (smtp-source, 4 sessions, {n1} msgs): {accept:.0f} msgs/s")
        results = []
        for workers in (1, 4):
            set_router_options(p, min_workers=workers, max_workers=workers)
            for label, n, rcpts in (("1 rcpt", n1, [f"u1@{d}"]),
                                    ("10 rcpts", n10, [f"u{i}@{d}" for i in range(1, 11)]),
                                    ("1,000-member list", nlist, [f"big@{d}"])):
                msgs, deliveries = route_run(p, workers, n, rcpts, label)
                results.append((workers, label, msgs, deliveries))
                print(f"{workers} worker(s), {label:18} {msgs:8.0f} msgs/s {deliveries:9.0f} deliveries/s "
                      f"ratio to listener {msgs / accept:6.2f}", flush=True)
            # set_router_options adds lines; start the next round from the original section.
            with open(p.config) as f:
                text = f.read()
            text = text.replace(f"min_workers = {workers}\nmax_workers = {workers}\n", "", 1)
            with open(p.config, "w") as f:
                f.write(text)
        print("\nworkers  mail               msgs/s  deliveries/s  ratio-to-listener")
        for workers, label, msgs, deliveries in results:
            print(f"{workers:7}  {label:18} {msgs:7.0f}  {deliveries:12.0f}  {msgs / accept:17.2f}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The queue group's acceptance figures (issue 17): wsmtp on one queue shard
against wsmtp on two, with Postfix's smtpd in the same run as the reference.

Each layout is a directory server plus one PostgreSQL server per shard, all on
this machine with durable commits (fsync on), the listener alone (nothing else
competes). Rounds alternate between the layouts and Postfix: this machine is
shared and noisy. Per round and layout it reports accepted messages per second
(Postfix's smtp-source, 20 sessions x 4 KiB, messages back to back; two
shards also at 40 sessions, the same load per shard as one shard at 20) and, per
shard and per message accepted there, the database's CPU (user + system time
of the shard server's processes, from /proc) and its statements
(pg_stat_statements calls): round trips and CPU per message that do not grow
with the number of shards show the shards need no coordination.

On 2 cores the shards share the same CPUs, so two shards here measure the cost
of the group, not its speed-up on separate machines.

Usage: WSMTP_BIN=build-dir queue_group.py [messages]   (WSMTP_BENCH_ROUNDS=n, default 3)
Bounded: a fixed message count per run (default 4000).
"""
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
from listener_smtp_source import Postfix, smtp_source  # noqa: E402
from pipeline import Pipeline  # noqa: E402

MESSAGES = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
ROUNDS = int(os.environ.get("WSMTP_BENCH_ROUNDS", "3"))
TICKS = os.sysconf("SC_CLK_TCK")


def server_cpu_seconds(server):
    """User + system CPU of a PostgreSQL server's postmaster and its children."""
    with open(os.path.join(server.datadir, "postmaster.pid")) as f:
        postmaster = int(f.readline())
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(pid) == postmaster or int(fields[1]) == postmaster:
            total += int(fields[11]) + int(fields[12])  # utime, stime (their waited-for children too: 13, 14)
            total += int(fields[13]) + int(fields[14])
    return total / TICKS


def durable(server, extra=""):
    with open(os.path.join(server.datadir, "postgresql.conf"), "a") as conf:
        conf.write("fsync = on\nfull_page_writes = on\nsynchronous_commit = on\n"
                   "shared_preload_libraries = 'pg_stat_statements'\n" + extra)
    server.restart()


class Layout:
    def __init__(self, shards):
        extra = "max_connection_rate = 0\nmax_connections_per_client = 500\n"
        self.p = Pipeline(listener_extra=extra, shards=shards, shard_servers=True, db_socket=True)
        durable(self.p.pg)
        for name, server in self.p.shard_pg.items():
            durable(server)
            server.psql("CREATE EXTENSION pg_stat_statements", self.p.shards[name])
        self.p.add_domain()
        self.p.add_mailbox("alice")
        self.p.start("wsmtp")
        self.name = f"{shards} shard{'s' if shards > 1 else ''}"

    def sample(self):
        out = {}
        for name, server in self.p.shard_pg.items():
            db = self.p.shards[name]
            calls = int(server.psql("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s "
                                    "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = current_database()", db))
            stored = int(server.psql("SELECT count(*) FROM messages", db))
            out[name] = (server_cpu_seconds(server), calls, stored)
        return out

    def run(self, count, sessions=20):
        before = self.sample()
        rate = smtp_source(self.p.port, sessions, 4096, count)
        after = self.sample()
        per_shard = {}
        for name in after:
            messages = after[name][2] - before[name][2]
            if messages:
                per_shard[name] = ((after[name][0] - before[name][0]) * 1000 / messages,
                                   (after[name][1] - before[name][1]) / messages, messages)
        return rate, per_shard

    def close(self):
        self.p.close()


def main():
    layouts = [Layout(1), Layout(2)]
    postfix = Postfix()
    # "2 shards, 40": the same load per shard as one shard's 20 sessions, so
    # each shard's group commits are as full as the lone shard's: its cost
    # per message then shows what the group itself adds.
    runs = [(layouts[0], 20, "1 shard"), (layouts[1], 20, "2 shards"), (layouts[1], 40, "2 shards, 40")]
    rates = {name: [] for _, _, name in runs}
    rates["postfix"] = []
    costs = {name: [] for _, _, name in runs}
    try:
        for _ in range(ROUNDS):
            for layout, sessions, name in runs:
                rate, per_shard = layout.run(MESSAGES * sessions // 20, sessions)
                rates[name].append(rate)
                costs[name].append(per_shard)
            rates["postfix"].append(smtp_source(postfix.port, 20, 4096, MESSAGES))
        print(f"20 sessions (40 where named) x 4 KiB, {MESSAGES} messages per 20 sessions, "
              f"median of {ROUNDS} alternating rounds; Postfix at 20 sessions")
        print(f"{'layout':<14} {'msg/s':>8} {'vs postfix':>11}   per shard: messages, db CPU ms/msg, statements/msg")
        for name, values in rates.items():
            ratio = statistics.median([w / f for w, f in zip(values, rates["postfix"])])
            line = f"{name:<14} {statistics.median(values):>8.0f} {ratio:>10.2f}x"
            if name in costs:
                shards = sorted({s for r in costs[name] for s in r})
                for s in shards:
                    cpu = statistics.median([r[s][0] for r in costs[name] if s in r])
                    calls = statistics.median([r[s][1] for r in costs[name] if s in r])
                    msgs = statistics.median([r[s][2] for r in costs[name] if s in r])
                    line += f"   {s}: {msgs:.0f}, {cpu:.3f}, {calls:.3f}"
            print(line)
        two, one = statistics.median(rates["2 shards"]), statistics.median(rates["1 shard"])
        print(f"two shards / one shard: {two / one:.2f}x (per-round: "
              + " ".join(f"{b / a:.2f}" for a, b in zip(rates["1 shard"], rates["2 shards"])) + ")")
    finally:
        postfix.stop()
        for layout in layouts:
            layout.close()


if __name__ == "__main__":
    main()

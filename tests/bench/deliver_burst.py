#!/usr/bin/env python3
"""End-to-end burst: the same burst (default 10,000 messages of 4 KiB to 100
mailboxes over 20 SMTP sessions) sent into WSMTP (wsmtp, wroute, wdeliver with up to N workers,
PostgreSQL with fsync on) and into a throwaway Postfix delivering to Maildir
with virtual(8), one after the other on the same machine. For each, the time
from the first connection until the last message is in its Maildir's new/;
reported as a ratio (target: WSMTP at least 2x faster).
The client is Postfix's smtp-source (20 concurrent sessions, each sending to
its share of the mailboxes); WSMTP_BURST_CLIENT=smtplib uses Python instead.
WSMTP_BENCH_ROUNDS alternating rounds (default 3), reported with their median.
Everything lives under TMPDIR (default /tmp): point it at a dedicated file
system for figures that do not depend on what the machine did just before.
Usage: deliver_burst.py [messages] [most wdeliver workers]  (defaults 10000, 4). Needs WSMTP_BIN.
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from deliver_bench_lib import HERE, durable_pipeline, run_sessions, send_parallel, set_section

sys.path.insert(0, os.path.join(HERE, "..", "harness"))
from deliver_postfix import Postfix  # noqa: E402

USERS = [f"b{i:03d}" for i in range(100)]
SESSIONS = 20
# smtp-source (default) or smtplib (WSMTP_BURST_CLIENT=smtplib, bodies with varied content).
CLIENT = os.environ.get("WSMTP_BURST_CLIENT", "smtp-source")
ROUNDS = int(os.environ.get("WSMTP_BENCH_ROUNDS", "3"))


def count_new(maildirs):
    n = 0
    for d in maildirs:
        try:
            n += len(os.listdir(d))
        except FileNotFoundError:
            pass
    return n


def last_arrival(maildirs):
    """When the last file arrived in any of the new/ directories: the newest
    inode change time (a rename or link into new/ sets it), in time.time()'s
    clock. Read once at the end, so the race is not slowed by its observer."""
    newest = 0.0
    for d in maildirs:
        with os.scandir(d) as entries:
            for e in entries:
                newest = max(newest, e.stat(follow_symlinks=False).st_ctime)
    return newest


def send_smtp_source(port, n, domain):
    """The burst from Postfix's smtp-source (a C client: Python's smtplib in
    threads tops out near 450 msg/s here, below both servers): SESSIONS
    concurrent sessions, each sending in turn to its share of the mailboxes,
    n / len(USERS) messages of 4 KiB to each."""
    per_user = n // len(USERS)

    def session(k):
        for user in USERS[k::SESSIONS]:
            r = subprocess.run(["smtp-source", "-d", "-s", "1", "-l", "4096", "-m", str(per_user), "-f",
                                "bench@client.example", "-t", f"{user}@{domain}", "-M", "client.example",
                                f"127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               timeout=600)
            if r.returncode != 0:
                raise RuntimeError(r.stdout[-300:])

    return run_sessions(SESSIONS, session)


def burst(port, domain, n, maildirs, timeout=1800):
    """Sends the burst; returns (seconds to accept all, seconds until all in Maildir)."""
    start = time.time()
    accepted = {}

    def send():
        if CLIENT == "smtp-source":
            accepted["t"] = send_smtp_source(port, n, domain)
        else:
            accepted["t"] = send_parallel(port, n, SESSIONS, lambda i: f"{USERS[i % len(USERS)]}@{domain}")

    t = threading.Thread(target=send)
    t.start()
    # Polled every half second only: on 2 cores, listing 100 directories 20
    # times a second took ~5% of the CPU both servers compete for. The finish
    # time comes from the files themselves (last_arrival), not from the poll.
    while count_new(maildirs) < n and time.time() - start < timeout:
        time.sleep(0.5)
        if "t" in accepted and time.time() - start > accepted["t"] + 120:
            break  # everything was sent two minutes ago: something was refused or lost
    t.join()
    if count_new(maildirs) < n:
        raise RuntimeError(f"only {count_new(maildirs)} of {n} delivered")
    return accepted["t"], last_arrival(maildirs) - start


def run_wsmtp(n, workers):
    """One burst into a fresh WSMTP pipeline; returns seconds until all are in Maildir."""
    # Both servers unthrottled: the burst opens 100 connections from one address.
    p = durable_pipeline(lease_time="60s", listener_extra="max_connection_rate = 0\nmax_connections_per_client = 500")
    try:
        # One wdeliver supervisor, as deployed: it runs 1 worker and adds
        # workers up to `workers` while the delivery backlog is deep.
        set_section(p, "deliver", transports="maildir", batch_size="100", max_workers=str(workers))
        p.add_domain()
        for u in USERS:
            p.add_mailbox(u)
        for name in ("wsmtp", "wroute", "wreaper", "wdeliver"):
            p.start(name)
        accept, total = burst(p.port, p.domain, n, [os.path.join(p.maildir(u), "new") for u in USERS])
        print(f"WSMTP:   {n} messages accepted in {accept:6.1f}s, all in Maildir after {total:6.1f}s "
              f"({n / total:6.0f} msg/s; wdeliver with up to {workers} workers)", flush=True)
        return total
    finally:
        p.close()


def run_postfix(n):
    """The same burst into a fresh throwaway Postfix; returns seconds until all are in Maildir."""
    root = tempfile.mkdtemp(prefix="wsmtp-bench-postfix-")
    pf = Postfix(root, "bench.test", USERS)
    try:
        accept, total = burst(pf.port, "bench.test", n, [os.path.join(pf.mail, u, "Maildir", "new") for u in USERS])
        print(f"Postfix: {n} messages accepted in {accept:6.1f}s, all in Maildir after {total:6.1f}s "
              f"({n / total:6.0f} msg/s)", flush=True)
        return total
    finally:
        pf.stop()
        shutil.rmtree(root, ignore_errors=True)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    ratios = []
    for r in range(ROUNDS):
        # Alternating order, so neither side always runs just after the
        # other's files were deleted (on ext4 without a journal, creating
        # files right after many deletions is measurably slower).
        if r % 2 == 0:
            w_total = run_wsmtp(n, workers)
            p_total = run_postfix(n)
        else:
            p_total = run_postfix(n)
            w_total = run_wsmtp(n, workers)
        ratios.append(p_total / w_total)
        print(f"round {r + 1}: ratio Postfix time / WSMTP time {ratios[-1]:4.2f}", flush=True)
    print(f"median ratio Postfix time / WSMTP time over {ROUNDS} rounds: {statistics.median(ratios):4.2f} "
          f"(rounds {', '.join(f'{x:4.2f}' for x in ratios)}; target >= 2)")


if __name__ == "__main__":
    main()

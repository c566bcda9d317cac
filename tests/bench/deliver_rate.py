#!/usr/bin/env python3
"""Delivery rate of wdeliver alone: messages already routed (state 3) are
drained by a wdeliver with 1 and with 4 worker processes, to Maildir and to a relay (Postfix's
smtp-sink), timed from worker start to the last message DONE. Beside it, in
the same run, Postfix's own local delivery rate: the same number of messages
held in its queue (defer_transports) and then flushed to virtual(8) Maildir
delivery. PostgreSQL runs with fsync on. Usage: deliver_rate.py [messages]
(default 2000; 4 KiB each, spread over 20 mailboxes). Needs WSMTP_BIN.
"""
import os
import sys
import time

from deliver_bench_lib import HERE, drain_rate, durable_pipeline, send_parallel, set_section, sql, timed_until

sys.path.insert(0, os.path.join(HERE, "..", "harness"))
from deliver_postfix import Postfix  # noqa: E402
from deliver_relays import SmtpSink  # noqa: E402

USERS = [f"m{i:02d}" for i in range(20)]
DELIVER_KEYS = {"transports": "maildir, relay", "batch_size": "50"}


def wsmtp_rate(p, n, workers, rcpt_of, first):
    """Queue n messages with no deliverer running, then time `workers` draining them."""
    # One supervisor holding exactly `workers` worker processes (it would
    # otherwise add workers for the deep backlog).
    set_section(p, "deliver", **DELIVER_KEYS, min_workers=str(workers), max_workers=str(workers))
    return drain_rate(p, n, lambda: send_parallel(p.port, n, 8, rcpt_of, first=first))


def postfix_rate(root, n):
    pf = Postfix(root, "bench.test", USERS, defer_delivery=True)
    try:
        send_parallel(pf.port, n, 8, lambda i: f"{USERS[i % len(USERS)]}@bench.test")
        deferred = os.path.join(pf.root, "queue", "deferred")
        timed_until(lambda: sum(len(f) for _, _, f in os.walk(deferred)) == n, 300, interval=0.2)
        pf.undefer()
        time.sleep(1.0)  # let the reload settle; nothing is delivered before the flush
        start = time.time()
        pf.flush()
        timed_until(lambda: pf.maildir_count() == n, 600)
        return n / (time.time() - start)
    finally:
        pf.stop()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    p = durable_pipeline(lease_time="60s", listener_extra="trusted_networks = 127.0.0.1/32\n")
    sink = None
    try:
        set_section(p, "deliver", **DELIVER_KEYS)
        p.add_domain()
        for u in USERS:
            p.add_mailbox(u)
        sink = SmtpSink(p.root, "bench")
        sql(p, "INSERT INTO relay_pools (name, max_messages_per_connection) VALUES ('default', 1000)")
        sql(p, f"INSERT INTO relays (pool, host, port) VALUES ('default', '127.0.0.1', {sink.backend_port})")
        for name in ("wsmtp", "wroute", "wreaper"):
            p.start(name)
        local = lambda i: f"{USERS[i % len(USERS)]}@{p.domain}"  # noqa: E731
        remote = lambda i: f"r{i % 20}@far.example"  # noqa: E731
        results = {}
        first = 0
        for label, rcpt_of in (("maildir", local), ("relay", remote)):
            for workers in (1, 4):
                results[(label, workers)] = wsmtp_rate(p, n, workers, rcpt_of, first)
                first += n
                print(f"wdeliver {label:7} workers={workers}: {results[(label, workers)]:8.0f} deliveries/s", flush=True)
        pf = postfix_rate(p.root, n)
        print(f"postfix virtual(8) Maildir delivery:   {pf:8.0f} deliveries/s")
        for (label, workers), rate in results.items():
            print(f"ratio wdeliver {label} x{workers} / postfix local: {rate / pf:5.2f}")
    finally:
        if sink:
            sink.stop()
        p.close()


if __name__ == "__main__":
    main()

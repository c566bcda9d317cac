"""Shared pieces of the delivery benchmarks: a WSMTP pipeline with a durable
PostgreSQL (fsync on, unlike the tests' scratch server: the comparison with
Postfix, which fsyncs its queue, must be fair), a parallel SMTP sender, and
timing helpers. Everything started here is stopped by PID or by its own stop.
"""
import os
import signal
import smtplib
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
from deliver_harness import Pipeline, queue_counts, set_section, sql, wait_until  # noqa: E402,F401


def durable_pipeline(**kwargs):
    """A pipeline set up as a single host runs it: durable commits, the queue
    database's vacuum advice, and the daemons on PostgreSQL's Unix socket
    (deploy/examples/wsmtp.conf)."""
    p = Pipeline(db_socket=True, **kwargs)
    with open(os.path.join(p.pg.datadir, "postgresql.conf"), "a") as conf:
        conf.write("fsync = on\nfull_page_writes = on\nsynchronous_commit = on\n"
                   # The queue database's tuning from deploy/README.md: vacuum the
                   # queue tables every second, as they churn.
                   "autovacuum_naptime = 1s\nautovacuum_vacuum_cost_limit = 2000\n")
    p.pg.restart()
    return p


def body_of(i, size):
    head = f"Subject: bench-{i:06d}\r\nMessage-ID: <bench-{i:06d}@bench>\r\n\r\n"
    line = ("0123456789abcdef" * 4 + "\r\n")
    return head + line * max(1, (size - len(head)) // len(line))


def run_sessions(sessions, session):
    """Runs session(k) for k in range(sessions) on threads at once; re-raises
    the first exception any of them raised. Returns seconds taken."""
    errors = []

    def guarded(k):
        try:
            session(k)
        except Exception as e:  # reported after join
            errors.append(e)

    start = time.time()
    threads = [threading.Thread(target=guarded, args=(k,)) for k in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.time() - start


def send_parallel(port, count, sessions, rcpt_of, size=4096, sender="bench@client.example", first=0,
                  body=None, mail_options=()):
    """Sends `count` messages over `sessions` SMTP connections in parallel;
    message i goes to rcpt_of(i) with body(i) (default: body_of(i, size)).
    Returns seconds taken."""
    def session(k):
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as s:
            for i in range(first + k, first + count, sessions):
                s.sendmail(sender, [rcpt_of(i)], body(i) if body else body_of(i, size), mail_options=list(mail_options))

    return run_sessions(sessions, session)


def timed_until(predicate, timeout, interval=0.05):
    start = time.time()
    wait_until(predicate, timeout, interval=interval, what="benchmark completion")
    return time.time() - start


def drain_rate(p, n, queue):
    """Queues n messages with no deliverer running (queue() sends them), waits
    until they are routed, then times one wdeliver (as configured) draining
    them to DONE. Returns messages per second; the deliverer is stopped."""
    counts = queue_counts(p)
    done_before, routed_before = counts["DONE"], counts["ROUTED"]
    queue()
    timed_until(lambda: queue_counts(p)["ROUTED"] == routed_before + n, 300, interval=0.2)
    proc = p.start("wdeliver")
    seconds = timed_until(lambda: queue_counts(p)["DONE"] == done_before + n, 600)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    p.procs["wdeliver"] = []
    return n / seconds

#!/usr/bin/env python3
"""Acceptance throughput with rspamd as milter (issue 18): wsmtp against
Postfix's smtpd with the same rspamd, same machine, same run, and each without
a milter, so that the milter's cost to each is reported.

Four servers run side by side and idle while another is measured: wsmtp without
milters, wsmtp with `milters = inet:<rspamd>` (a second listener on the same
throwaway PostgreSQL, durable commits as in listener_smtp_source.py), and two
private Postfix instances (accepting into their queues, then discarding), one
with `smtpd_milters = inet:<rspamd>`. One rspamd (tests/harness/milters.py:
proxy workers in milter mode, one per core, self_scan, milter_headers) serves
both MTAs; it is most of the work per message, for both.

Load: Postfix's smtp-source, 20 sessions x 4 KiB, messages back to back on each
connection. Rounds alternate over the four servers (this machine is shared and
noisy); the figures are each server's median and the median of the per-round
ratios. The milter's cost is the throughput lost and the time it adds per message.

Usage: WSMTP_BIN=build-dir milter.py [messages]   (WSMTP_BENCH_ROUNDS=n, default 3)
Bounded: a fixed message count per run (default 1000), smtp-source's 600 s cap per run.
"""
import os
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
from listener_smtp_source import Postfix, smtp_source  # noqa: E402
from milters import Rspamd  # noqa: E402
from pgtmp import free_port  # noqa: E402
from pipeline import Pipeline  # noqa: E402

MESSAGES = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
ROUNDS = int(os.environ.get("WSMTP_BENCH_ROUNDS", "3"))
SESSIONS, SIZE = 20, 4096


def start_milter_listener(p, milter):
    """A second wsmtp on the pipeline's database: its own port, the milter configured."""
    port = free_port()
    with open(p.config) as f:
        text = f.read()
    listen = f"listen = 127.0.0.1:{p.port}\n"
    assert listen in text, "the pipeline's [listener] listen line changed"
    text = text.replace(listen, f"listen = 127.0.0.1:{port}\nmilters = {milter}\n")
    config = os.path.join(p.root, "wsmtp-milter.conf")
    with open(config, "w") as f:
        f.write(text)
    log = open(os.path.join(p.log_dir, "wsmtp-milter.log"), "a")
    proc = subprocess.Popen([os.path.join(p.bindir, "listener/wsmtp"), "--config", config], stdout=log, stderr=log,
                            start_new_session=True)
    log.close()
    # Stopped with the pipeline's own wsmtp (Pipeline.close stops every process it lists).
    p.procs.setdefault("wsmtp", []).append(proc)
    deadline = time.time() + 20
    while time.time() < deadline:
        if proc.poll() is not None:
            with open(os.path.join(p.log_dir, "wsmtp-milter.log")) as f:
                raise RuntimeError(f"wsmtp with milters exited ({proc.returncode}):\n{f.read()[-2000:]}")
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=5) as s:
                s.noop()
            return port
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("wsmtp with milters did not listen")


def cost(without, with_milter):
    """(throughput lost in percent, milliseconds added per message at this concurrency)."""
    return 100.0 * (1 - with_milter / without), 1000.0 * (1 / with_milter - 1 / without)


def main():
    extra = "max_connection_rate = 0\nmax_connections_per_client = 500\nmax_message_size = 100M\n"
    tmp = tempfile.mkdtemp(prefix="wsmtp-bench-milter-")
    os.chmod(tmp, 0o755)
    postfixes = []
    with Pipeline(listener_extra=extra, db_socket=True) as p, Rspamd(tmp, workers=os.cpu_count()) as rspamd:
        with open(os.path.join(p.pg.datadir, "postgresql.conf"), "a") as conf:
            conf.write("fsync = on\nfull_page_writes = on\nsynchronous_commit = on\n")
        p.pg.restart()
        p.add_domain()
        p.add_mailbox("alice")
        p.start("wsmtp")
        try:
            servers = {"wsmtp": p.port, "wsmtp+rspamd": start_milter_listener(p, rspamd.milter)}
            postfixes.append(Postfix())
            postfixes.append(Postfix(extra=f"smtpd_milters = {rspamd.milter}\nmilter_default_action = tempfail\n"))
            servers["postfix"], servers["postfix+rspamd"] = postfixes[0].port, postfixes[1].port
            rates = {name: [] for name in servers}
            for _ in range(ROUNDS):
                for name, port in servers.items():
                    rates[name].append(smtp_source(port, SESSIONS, SIZE, MESSAGES))
            med = {name: statistics.median(r) for name, r in rates.items()}
            print(f"{SESSIONS} sessions x {SIZE // 1024} KiB, {MESSAGES} messages per run, median of {ROUNDS} "
                  "alternating rounds (per-round figures after the median)")
            print(f"{'server':<16} {'msg/s':>8}   rounds")
            for name in servers:
                print(f"{name:<16} {med[name]:>8.0f}   " + " ".join(f"{r:.0f}" for r in rates[name]))
            for mode in ("", "+rspamd"):
                ratios = [w / f for w, f in zip(rates["wsmtp" + mode], rates["postfix" + mode])]
                print(f"wsmtp{mode} / postfix{mode}: {statistics.median(ratios):.2f}x   "
                      + " ".join(f"{r:.2f}" for r in ratios))
            for server in ("wsmtp", "postfix"):
                lost, added = cost(med[server], med[server + "+rspamd"])
                print(f"rspamd's cost to {server}: {lost:.0f}% of the throughput, "
                      f"{added:.2f} ms more per message (20 sessions)")
            stored = int(p.pg.psql("SELECT count(*) FROM messages WHERE state = 1", dbname="wsmtp"))
            print(f"wsmtp messages in state 1: {stored} of {2 * ROUNDS * MESSAGES} sent")
        finally:
            for postfix in postfixes:
                postfix.stop()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

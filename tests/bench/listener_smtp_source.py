#!/usr/bin/env python3
"""Acceptance throughput of wsmtp against Postfix's smtpd, same machine, same run.

Drives each server with Postfix's smtp-source and reports accepted messages
per second:
  * 20 sessions, 4 KiB messages;  * 1 session, 4 KiB;  * 20 sessions, 64 KiB,
    each with messages back to back on a connection (-d);
  * 20 sessions, 4 KiB, a new connection per message (issue 16's figure).
wsmtp runs on a throwaway PostgreSQL with durable commits (fsync = on, unlike
the test harness default); Postfix runs as a private instance (its own config
and queue directory under /tmp, loopback port) that accepts into its queue and
fsyncs queue files as it always does, then discards (no delivery work competes).
Also runs pgbench with the same SQL the listener does per small message
(receive_messages with a reserved id; one message per transaction) at 20 clients as the database's own ceiling. Usage: WSMTP_BIN=build-dir listener_smtp_source.py [messages]
(WSMTP_BENCH_ROUNDS=n alternating rounds per run, default 3)
Bounded: a fixed message count per run (default 2000) and a 10 s pgbench.
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
from pipeline import Pipeline  # noqa: E402
from pgtmp import _pg_bindir, free_port  # noqa: E402

MESSAGES = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
RUNS = [(20, 4096, True), (1, 4096, True), (20, 65536, True), (20, 4096, False)]
ROUNDS = int(os.environ.get("WSMTP_BENCH_ROUNDS", "3"))
if os.environ.get("WSMTP_BENCH_QUICK"):
    RUNS = RUNS[:1]


def smtp_source(port, sessions, size, count, reuse=True):
    cmd = ["smtp-source", *(["-d"] if reuse else []), "-s", str(sessions), "-l", str(size), "-m", str(count), "-f", "bench@client.example",
           "-t", "alice@example.test", "-M", "bench.client.example", f"127.0.0.1:{port}"]
    start = time.time()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    elapsed = time.time() - start
    if r.returncode != 0:
        raise RuntimeError(f"smtp-source failed: {r.stdout[-500:]}")
    return count / elapsed


class Postfix:
    """A private Postfix instance on a loopback port, stopped by its master's PID.
    extra: more main.cf lines (smtpd_milters for tests/bench/milter.py)."""

    def __init__(self, extra=""):
        self.dir = tempfile.mkdtemp(prefix="wsmtp-bench-postfix-")
        self.port = free_port()
        os.chmod(self.dir, 0o755)  # postfix daemons run as the postfix user
        q = os.path.join(self.dir, "queue")
        with open(os.path.join(self.dir, "main.cf"), "w") as f:
            f.write(f"""compatibility_level = 3.6
queue_directory = {q}
data_directory = {self.dir}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = postfix.bench.example
mydestination = example.test
local_recipient_maps =
alias_maps =
alias_database =
local_transport = discard
default_transport = discard
relay_transport = discard
maillog_file_prefixes = /tmp
maillog_file = {self.dir}/maillog
smtpd_client_connection_rate_limit = 0
smtpd_client_connection_count_limit = 0
default_process_limit = 100
{extra}
""")
        master = []
        with open("/etc/postfix/master.cf") as f:
            for line in f:
                fields = line.split()
                if not fields or line[0] in " \t#":
                    continue
                if fields[1] == "inet":
                    continue  # our own smtpd line below replaces every network service
                fields[4] = "n"  # no chroot: the queue lives under /tmp
                master.append(" ".join(fields))
        master.insert(0, f"127.0.0.1:{self.port} inet n - n - - smtpd")
        if not any(line.startswith("postlog ") for line in master):
            master.append("postlog unix-dgram n - n - 1 postlogd")
        with open(os.path.join(self.dir, "master.cf"), "w") as f:
            f.write("\n".join(master) + "\n")
        os.makedirs(os.path.join(self.dir, "data"))
        os.makedirs(q)
        shutil.chown(os.path.join(self.dir, "data"), "postfix")
        subprocess.run(["postfix", "-c", self.dir, "check"], check=True)
        subprocess.run(["postfix", "-c", self.dir, "start"], check=True)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                import socket
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("postfix did not start")

    def stop(self):
        pid_file = os.path.join(self.dir, "queue", "pid", "master.pid")
        try:
            with open(pid_file) as f:
                pid = int(f.read().split()[0])
            os.kill(pid, 15)
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.1)
        except (OSError, ValueError):
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def pgbench(p, clients, seconds=10):
    script = os.path.join(p.root, "accept.sql")
    with open(script, "w") as f:
        # The listener's statement for one message per transaction (it
        # batches several per transaction under load; pgbench does not).
        f.write("SELECT receive_messages(ARRAY(SELECT reserve_message_ids(1)), ARRAY['bench@client.example'], "
                "ARRAY['127.0.0.1'], ARRAY[''], ARRAY['h'], ARRAY['pgbench'], ARRAY[4096]::bigint[], "
                "ARRAY[1]::bigint[], ARRAY[0], ARRAY['alice@example.test'], ARRAY[1]::bigint[], "
                "ARRAY['c:127.0.0.1'], ARRAY[decode(repeat('78', 4096), 'hex')]);\n")
    r = subprocess.run([os.path.join(_pg_bindir(), "pgbench"), "-n", "-c", str(clients), "-j", "2", "-T", str(seconds),
                        "-f", script, "-h", "127.0.0.1", "-p", str(p.pg.port), "-U", "postgres", "wsmtp"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
                       env=dict(os.environ, PGOPTIONS="-c wsmtp.deferred_wakeup=on"))  # as the listener's session
    for line in r.stdout.splitlines():
        if line.startswith("tps ="):
            return float(line.split()[2])
    raise RuntimeError(r.stdout)


def main():
    extra = "max_connection_rate = 0\nmax_connections_per_client = 500\nmax_message_size = 100M\n"
    extra += os.environ.get("WSMTP_BENCH_LISTENER", "").replace(";", "\n") + "\n"
    with Pipeline(listener_extra=extra, db_socket=True) as p:  # as on a single host
        # Durable commits for the benchmark: the harness turns fsync off for speed.
        with open(os.path.join(p.pg.datadir, "postgresql.conf"), "a") as conf:
            conf.write("fsync = on\nfull_page_writes = on\nsynchronous_commit = on\n")
        p.pg.restart()
        p.add_domain()
        p.add_mailbox("alice")
        p.start("wsmtp")
        postfix = Postfix()
        try:
            # Alternating rounds, each server's median and the median of the
            # per-round ratios: this machine is shared, and a burst of someone
            # else's work should hit both servers, not one.
            print(f"{'run':<22} {'wsmtp msg/s':>12} {'postfix msg/s':>14} {'ratio':>7}   (median of {ROUNDS} rounds; ratios per round)")
            expected = 0
            for sessions, size, reuse in RUNS:
                count = MESSAGES if size <= 4096 else MESSAGES // 4
                if sessions == 1:
                    count //= 4
                ws, fs = [], []
                for _ in range(ROUNDS):
                    ws.append(smtp_source(p.port, sessions, size, count, reuse))
                    fs.append(smtp_source(postfix.port, sessions, size, count, reuse))
                    expected += count
                ratios = [w / f for w, f in zip(ws, fs)]
                label = f"{sessions:>2} sessions {size // 1024:>3} KiB" + ("" if reuse else " new conn")
                print(f"{label:<22} {statistics.median(ws):>12.0f} "
                      f"{statistics.median(fs):>14.0f} {statistics.median(ratios):>6.2f}x   "
                      + " ".join(f"{r:.2f}" for r in ratios))
            stored = int(p.pg.psql("SELECT count(*) FROM messages WHERE state = 1", dbname="wsmtp"))
            print(f"wsmtp messages in state 1: {stored} of {expected} sent")
            tps = pgbench(p, 20)
            print(f"pgbench, same SQL per message, 20 clients, durable: {tps:.0f} msg/s")
        finally:
            postfix.stop()


if __name__ == "__main__":
    main()

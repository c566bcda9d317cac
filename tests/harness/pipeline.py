"""The whole WSMTP pipeline on one machine, for end-to-end tests.

Starts a throwaway PostgreSQL (pgtmp.PgServer), writes one configuration file
for all programs, migrates the schema with wsmtpctl, and starts/kills/restarts
the daemons (wsmtp, wroute, wdeliver, wreaper) from WSMTP_BIN (the build
directory). Every process it starts it stops by PID; everything lives in one
temporary directory that is removed at the end.
"""
import json
import os
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time

# The checks in these tests are plain asserts, which python3 -O (or PYTHONOPTIMIZE)
# strips: refuse to run rather than pass without checking anything.
if not __debug__:
    sys.exit("run the end-to-end tests without -O or PYTHONOPTIMIZE: their checks are asserts")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pgtmp import PgServer, free_port  # noqa: E402

DAEMON_PATHS = {
    "wsmtp": "listener/wsmtp",
    "wroute": "router/wroute",
    "wdeliver": "deliver/wdeliver",
    "wreaper": "reaper/wreaper",
}


def bin_dir():
    d = os.environ.get("WSMTP_BIN")
    if not d:
        here = os.path.dirname(os.path.abspath(__file__))
        d = os.path.join(here, "..", "..", "build")
    return os.path.abspath(d)


class Pipeline:
    # The pipelines not yet closed, so that a test runner can show their logs
    # when a test fails (tests/integration/e2e/conftest.py).
    open_pipelines = []

    def __init__(self, domain="example.test", lease_time="5s", queue_extra="", listener_extra="", ipv6=False,
                 db_socket=False, router_extra="", shards=0, shard_servers=False, sync_standby=()):
        self.bindir = bin_dir()
        self.root = tempfile.mkdtemp(prefix="wsmtp-e2e-")
        self.pg = PgServer()
        self.pg.create_database("wsmtp")
        # The daemons reach the database over TCP, or with db_socket over the
        # Unix socket, as on a single host (the benchmarks).
        self.conninfo = self.pg.conninfo("wsmtp", via_socket=db_socket)
        # With shards, the database "wsmtp" is only the directory and the queue
        # is the databases wsmtp_q1..N (shards q1..qN, ids 1..N): self.shards
        # maps each shard's name to its database, self.shard_pg to its server.
        # They share the directory's server unless shard_servers (a server per
        # shard, to crash one alone); a shard named in sync_standby gets its
        # own server and a synchronous streaming standby (self.standbys), and
        # its conninfo lists both, target_session_attrs=read-write, so a
        # promoted standby is found as in production.
        self.shards, self.shard_pg, self.standbys, self.shard_conninfo = {}, {}, {}, {}
        shard_sections = ""
        for i in range(1, shards + 1):
            name = f"q{i}"
            self.shards[name] = f"wsmtp_{name}"
            server = PgServer() if shard_servers or name in sync_standby else self.pg
            self.shard_pg[name] = server
            server.create_database(self.shards[name])
            if name in sync_standby:
                standby = self.standbys[name] = server.add_synchronous_standby()
                self.shard_conninfo[name] = (f"host=127.0.0.1,127.0.0.1 port={server.port},{standby.port} "
                                             f"user=postgres dbname={self.shards[name]} "
                                             "target_session_attrs=read-write connect_timeout=5")
            else:
                self.shard_conninfo[name] = server.conninfo(self.shards[name], via_socket=db_socket)
            shard_sections += f"[shard {name}]\nid = {i}\nweight = 1\nconninfo = {self.shard_conninfo[name]}\n\n"
        self.port = free_port()
        self.domain = domain
        self.mail_root = os.path.join(self.root, "mail")
        self.log_dir = os.path.join(self.root, "logs")
        os.makedirs(self.log_dir)
        self.config = os.path.join(self.root, "wsmtp.conf")
        with open(self.config, "w") as f:
            f.write(
                "[database]\n"
                f"conninfo = {self.conninfo}\n\n"
                f"{shard_sections}"
                "[queue]\n"
                f"lease_time = {lease_time}\n"
                "poll_interval = 1s\n"
                f"{queue_extra}\n"
                "[listener]\n"
                f"listen = 127.0.0.1:{self.port}{f', [::1]:{self.port}' if ipv6 else ''}\n"
                "hostname = mx.example.test\n"
                f"{listener_extra}\n"
                "[router]\n"
                f"{router_extra}\n"
                "[deliver]\n"
                "transports = maildir\n"
                "retry_base = 1s\n\n"
                "[reaper]\n"
                "interval = 1s\n"
            )
        self.procs = {}
        Pipeline.open_pipelines.append(self)
        self.ctl("db", "migrate")

    # --- processes -----------------------------------------------------
    def ctl(self, *args, check=True, stdin=None):
        cmd = [os.path.join(self.bindir, "ctl/wsmtpctl"), "--config", self.config, *args]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, input=stdin)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({r.returncode}): {r.stderr}")
        return r

    def start(self, name, *extra):
        log = open(os.path.join(self.log_dir, f"{name}.log"), "a")
        cmd = [os.path.join(self.bindir, DAEMON_PATHS[name]), "--config", self.config, *extra]
        # Each daemon in its own process group: wroute and wdeliver are supervisors
        # with forked workers, and a crash (SIGKILL) must take the workers too.
        self.procs.setdefault(name, []).append(subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True))
        log.close()
        if name == "wsmtp":
            self.wait_for_port()
        return self.procs[name][-1]

    def start_all(self):
        for name in ("wsmtp", "wroute", "wdeliver", "wreaper"):
            self.start(name)

    def wait_for_port(self, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=2) as s:
                    s.noop()
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"wsmtp did not listen on {self.port}; log:\n{self.log('wsmtp')}")

    def kill(self, name, sig=signal.SIGKILL):
        for p in self.procs.get(name, []):
            if p.poll() is None:
                if sig == signal.SIGKILL:
                    os.killpg(p.pid, signal.SIGKILL)  # the whole daemon: supervisor and workers
                else:
                    p.send_signal(sig)  # the supervisor stops its workers gracefully
                p.wait(timeout=90)
        self.procs[name] = []

    def alive(self, name):
        return any(p.poll() is None for p in self.procs.get(name, []))

    def log(self, name):
        try:
            with open(os.path.join(self.log_dir, f"{name}.log")) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_tails(self, lines=40):
        out = []
        for name in DAEMON_PATHS:
            text = self.log(name)
            if text:
                out.append(f"----- {name} log (last {lines} lines) -----")
                out.extend(text.splitlines()[-lines:])
        return "\n".join(out)

    def close(self):
        if self in Pipeline.open_pipelines:
            Pipeline.open_pipelines.remove(self)
        for name in list(self.procs):
            self.kill(name, signal.SIGTERM)
        for server in set(self.shard_pg.values()) | set(self.standbys.values()):
            if server is not self.pg:
                server.destroy()
        self.pg.destroy()
        if os.environ.get("WSMTP_KEEP_TMP"):
            print(f"kept {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            print(self.log_tails())
        self.close()

    # --- directory -----------------------------------------------------
    def maildir(self, user):
        return os.path.join(self.mail_root, user, "Maildir")

    def add_domain(self, domain=None):
        self.ctl("domain", "add", domain or self.domain)

    def add_mailbox(self, user):
        self.ctl("mailbox", "add", f"{user}@{self.domain}", "--maildir", self.maildir(user))

    def add_alias(self, alias, *targets):
        self.ctl("alias", "add", f"{alias}@{self.domain}", *targets)

    # --- observation ---------------------------------------------------
    def shard_sql(self, name, statement):
        """statement on shard name's current primary (psql, unaligned rows)."""
        r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", self.shard_conninfo[name],
                            "-c", statement], check=True, stdout=subprocess.PIPE, text=True)
        return r.stdout.strip()

    def maildir_files(self, user):
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(self.maildir(user), sub)
            if os.path.isdir(d):
                out += [os.path.join(d, n) for n in sorted(os.listdir(d))]
        return out

    def queue(self):
        r = self.ctl("queue", "--json")
        return {s["name"]: s for s in json.loads(r.stdout)["states"]}

    def smtp(self, timeout=30):
        return smtplib.SMTP("127.0.0.1", self.port, timeout=timeout)


def wait_until(predicate, timeout, interval=0.1, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")

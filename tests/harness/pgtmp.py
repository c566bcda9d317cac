"""A throwaway PostgreSQL server for tests.

initdb + pg_ctl in a fresh temporary directory, listening on 127.0.0.1 on a
free port and on a Unix socket inside that directory. PostgreSQL refuses to run
as root, so when the tests run as root the server runs as the unprivileged user
`nobody`. Everything is removed on stop().

As a command:  pgtmp.py -- COMMAND ARGS...
runs COMMAND with WSMTP_TEST_PG set to an admin connection string (database
`postgres`), then stops the server and returns COMMAND's exit status.
"""
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time


def _pg_bindir():
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(p.split("/")[4]))
    if not candidates:
        raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
    return os.path.dirname(candidates[-1])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """standby_of: another PgServer; this one is then its streaming standby,
    cloned with pg_basebackup (-R: standby.signal and primary_conninfo)."""

    def __init__(self, base_dir=None, standby_of=None):
        self.bindir = _pg_bindir()
        self.tmp = tempfile.mkdtemp(prefix="wsmtp-pg-", dir=base_dir)
        self.datadir = os.path.join(self.tmp, "data")
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        self.logfile = os.path.join(self.tmp, "postgres.log")
        os.chmod(self.tmp, 0o755)
        if self.as_root:
            shutil.chown(self.tmp, "nobody", "nogroup")
        if standby_of is None:
            self._run("initdb", "-D", self.datadir, "-U", "postgres", "--auth=trust",
                      "--no-sync", "-E", "UTF8", "--locale=C.UTF-8")
        else:
            self._run("pg_basebackup", "-D", self.datadir, "-h", "127.0.0.1", "-p", str(standby_of.port),
                      "-U", "postgres", "-R", "-X", "stream", "--no-sync")
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as conf:
            conf.write(
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.tmp}'\n"
                "max_connections = 300\n"
                # Test data needs no protection against OS crashes; commits
                # stay synchronous so a server crash (pg_ctl -m immediate)
                # loses nothing that was acknowledged.
                "fsync = off\n"
                "full_page_writes = off\n"
                "shared_buffers = 128MB\n"
            )
        self.start()

    def add_synchronous_standby(self):
        """A streaming standby of this server that every commit waits for
        (synchronous_standby_names = '*', synchronous_commit = on): a commit
        acknowledged here is on the standby's disk too. Returns the standby."""
        standby = PgServer(standby_of=self)
        self.psql("ALTER SYSTEM SET synchronous_standby_names = '*'")
        self.psql("SELECT pg_reload_conf()")
        deadline = time.time() + 30
        while self.psql("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'") != "1":
            if time.time() > deadline:
                raise RuntimeError("the standby did not become synchronous")
            time.sleep(0.1)
        return standby

    def promote(self):
        self._run("pg_ctl", "-D", self.datadir, "-w", "-t", "60", "promote")

    def kill_postmaster(self):
        """SIGKILL to the postmaster alone, as a crash would (its backends
        notice and exit on their own)."""
        with open(os.path.join(self.datadir, "postmaster.pid")) as f:
            pid = int(f.readline())
        os.kill(pid, signal.SIGKILL)

    def start_after_crash(self, timeout=60):
        """Starts a server whose postmaster was killed, once its orphaned
        backends have gone (until then the data directory is in use)."""
        deadline = time.time() + timeout
        while True:
            r = self._run("pg_ctl", "-D", self.datadir, "-l", self.logfile, "-w", "-t", "60", "start", check=False)
            if r.returncode == 0:
                return
            if time.time() > deadline:
                raise RuntimeError(f"PostgreSQL did not start after the crash: {r.stdout}")
            time.sleep(0.5)

    def _run(self, tool, *args, check=True):
        cmd = [os.path.join(self.bindir, tool), *args]
        if self.as_root:
            cmd = ["runuser", "-u", "nobody", "--", *cmd]
        return subprocess.run(cmd, check=check, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, cwd=self.tmp)

    def start(self):
        self._run("pg_ctl", "-D", self.datadir, "-l", self.logfile, "-w", "-t", "60", "start")

    def stop(self, mode="fast"):
        self._run("pg_ctl", "-D", self.datadir, "-m", mode, "-w", "stop", check=False)

    def restart(self, mode="fast"):
        self._run("pg_ctl", "-D", self.datadir, "-m", mode, "-w", "-t", "60",
                  "-l", self.logfile, "restart")

    def conninfo(self, dbname="postgres", via_socket=False):
        """TCP on 127.0.0.1, or the Unix socket in the server's directory (as a
        single-host deployment connects: deploy/examples/wsmtp.conf)."""
        host = self.tmp if via_socket else "127.0.0.1"
        return f"host={host} port={self.port} user=postgres dbname={dbname}"

    def psql(self, sql, dbname="postgres"):
        out = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                              "-d", self.conninfo(dbname), "-c", sql],
                             check=True, stdout=subprocess.PIPE, text=True)
        return out.stdout.strip()

    def create_database(self, name):
        self.psql(f'CREATE DATABASE "{name}"')
        return self.conninfo(name)

    def destroy(self):
        self.stop("immediate")
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.destroy()


def main(argv):
    if "--" not in argv:
        print("usage: pgtmp.py -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    cmd = argv[argv.index("--") + 1:]
    with PgServer() as pg:
        env = dict(os.environ, WSMTP_TEST_PG=pg.conninfo())
        return subprocess.call(cmd, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv))

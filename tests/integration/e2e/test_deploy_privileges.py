"""The daemons run as the shipped systemd units say: each as its own user, with
its own credential, logging in to PostgreSQL as its own least-privilege role
(issue 15: "All daemons run as one Unix account").

The users, groups and credential names are read from deploy/systemd/*.service,
so the checks test what is shipped. The harness creates those users in a
private mount namespace (a copy of /etc/passwd and /etc/group bind-mounted over
the real ones, for PostgreSQL's peer authentication and for setpriv) and leaves
the machine's own user database untouched. PostgreSQL accepts only:

    local  wsmtp  <the four daemon users>  peer
    host   all    postgres  127.0.0.1/32   scram-sha-256   (the harness, as admin)

Then, as an attacker with code execution in the listener (its uid, its
environment), the test tries to take the other daemons' rights: their database
roles, the superuser, their credential files, their process environments.
Every attempt must fail, and mail must still flow end to end.
"""
import os
import re
import secrets
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "harness"))
from pgtmp import free_port  # noqa: E402
from pipeline import DAEMON_PATHS, bin_dir, wait_until  # noqa: E402
from unix_users import GROUP_ROLE, UNITS, Namespace, NamespacedPg, unit_settings  # noqa: E402

if os.geteuid() != 0:
    pytest.skip("needs root: it runs each daemon under its own uid", allow_module_level=True)
for tool in ("unshare", "setpriv", "mount", "psql"):
    if not shutil.which(tool):
        pytest.skip(f"{tool} is not installed", allow_module_level=True)
if subprocess.run(["unshare", "--mount", "--propagation", "private", "true"]).returncode != 0:
    pytest.skip("mount namespaces are not permitted here (unshare --mount failed)", allow_module_level=True)

class Deployment:
    def __init__(self):
        self.units = {d: unit_settings(d) for d in UNITS}
        self.root = tempfile.mkdtemp(prefix="wsmtp-priv-")
        os.chmod(self.root, 0o755)
        users = {s["user"]: s["group"] for s in self.units.values()}
        groups = {}
        for s in self.units.values():
            groups.setdefault(s["group"], [])
            for g in s["supplementary"]:
                groups.setdefault(g, [])
                if s["user"] not in groups[g]:
                    groups[g].append(s["user"])
        self.ns = Namespace(self.root, users, groups)
        self.pg = NamespacedPg(self.ns)
        self.admin_password = secrets.token_hex(16)
        self.pg.psql("CREATE DATABASE wsmtp")
        self.pg.psql(f"ALTER ROLE postgres PASSWORD '{self.admin_password}'")
        daemon_users = ",".join(sorted(users))
        with open(os.path.join(self.pg.datadir, "pg_hba.conf"), "w") as f:
            f.write(f"local wsmtp {daemon_users} peer\n"
                    "host all postgres 127.0.0.1/32 scram-sha-256\n")
        self.pg._run("pg_ctl", "-D", self.pg.datadir, "reload")
        # The harness's own psql and wsmtpctl; the daemons and the attacker get
        # explicit environments without it.
        os.environ["PGPASSWORD"] = self.admin_password
        self.port = free_port()
        self.mail_root = os.path.join(self.root, "mail")
        os.makedirs(self.mail_root)
        deliver = self.units["wdeliver"]
        os.chown(self.mail_root, self.ns.uid[deliver["user"]], self.ns.gid[deliver["group"]])
        self.log_dir = os.path.join(self.root, "logs")
        os.makedirs(self.log_dir)
        body = ("[queue]\nlease_time = 5s\npoll_interval = 1s\n\n"
                f"[listener]\nlisten = 127.0.0.1:{self.port}\nhostname = mx.example.test\n\n"
                "[router]\n\n[deliver]\ntransports = maildir\nretry_base = 1s\n\n[reaper]\ninterval = 1s\n")
        # The operator's configuration (the superuser, over TCP with its password).
        self.admin_config = os.path.join(self.root, "admin.conf")
        with open(self.admin_config, "w") as f:
            f.write(f"[database]\nconninfo = host=127.0.0.1 port={self.pg.port} user=postgres dbname=wsmtp\n\n{body}")
        os.chmod(self.admin_config, 0o600)
        # The daemons': the socket, no user= (each logs in as its own user name).
        self.config = os.path.join(self.root, "wsmtp.conf")
        with open(self.config, "w") as f:
            f.write(f"[database]\nconninfo = host={self.pg.tmp} port={self.pg.port} dbname=wsmtp\n\n{body}")
        os.chown(self.config, 0, self.ns.gid["wsmtp"])
        os.chmod(self.config, 0o640)
        self.ctl("db", "migrate")
        for daemon, s in self.units.items():
            self.pg.psql(f'CREATE ROLE "{s["user"]}" LOGIN IN ROLE {GROUP_ROLE[daemon]}', dbname="wsmtp")
        # What systemd's LoadCredential= shows each service: a copy of its file,
        # owned by the service's user, mode 0400, in a directory of its own.
        self.credentials = {}
        for daemon, s in self.units.items():
            for name, path in s["credentials"]:
                cdir = os.path.join(self.root, "credentials", os.path.basename(path))
                os.makedirs(cdir, mode=0o500)
                os.chown(cdir, self.ns.uid[s["user"]], 0)
                cred = os.path.join(cdir, name)
                with open(cred, "w") as f:
                    f.write(f"db.example.net:5432:wsmtp:{s['user']}:{daemon}-secret-{secrets.token_hex(8)}\n")
                os.chown(cred, self.ns.uid[s["user"]], 0)
                os.chmod(cred, 0o400)
                self.credentials[daemon] = cred
        self.procs = {}

    def env(self, daemon):
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8"}
        for assignment in self.units[daemon]["environment"]:
            key, _, value = assignment.partition("=")
            if value == "%d/pgpass" and daemon in self.credentials:
                value = self.credentials[daemon]
            env[key] = value
        return env

    def ctl(self, *args):
        r = subprocess.run([os.path.join(bin_dir(), "ctl/wsmtpctl"), "--config", self.admin_config, *args],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert r.returncode == 0, f"wsmtpctl {' '.join(args)}: {r.stderr}"
        return r.stdout

    def start(self, daemon):
        s = self.units[daemon]
        cmd = self.ns.unit_command(s, [os.path.join(bin_dir(), DAEMON_PATHS[daemon]), "--config", self.config])
        with open(os.path.join(self.log_dir, f"{daemon}.log"), "a") as log:
            self.procs[daemon] = subprocess.Popen(cmd, stdout=log, stderr=log, env=self.env(daemon),
                                                  start_new_session=True, cwd="/")

    def log(self, daemon):
        with open(os.path.join(self.log_dir, f"{daemon}.log")) as f:
            return f.read()

    def as_listener(self, cmd):
        """cmd with everything code running in the listener has: its uid, groups and environment."""
        s = self.units["wsmtp"]
        return subprocess.run(self.ns.as_user(s["user"], s["group"], cmd), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=self.env("wsmtp"), timeout=30)

    def close(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, 9)
                p.wait()
        self.pg.destroy()
        shutil.rmtree(self.root, ignore_errors=True)


def process_tree(pid):
    """pid and all its descendants."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def uids(pid):
    with open(f"/proc/{pid}/status") as f:
        line = next(l for l in f if l.startswith("Uid:"))
    return [int(x) for x in line.split()[1:]]


@pytest.fixture(scope="module")
def deployment():
    d = Deployment()
    try:
        d.ctl("domain", "add", "example.test")
        d.ctl("mailbox", "add", "alice@example.test", "--maildir", os.path.join(d.mail_root, "alice", "Maildir"))
        # The deliverer may not write here (root's, 0700): its mail stays queued.
        locked = os.path.join(d.root, "locked")
        os.makedirs(locked, mode=0o700)
        d.ctl("mailbox", "add", "stuck@example.test", "--maildir", os.path.join(locked, "Maildir"))
        for daemon in UNITS:
            d.start(daemon)
            # The wrapper (unshare, sh, setpriv) execs into the daemon under the same pid.
            wait_until(lambda: os.readlink(f"/proc/{d.procs[daemon].pid}/exe").endswith("/" + daemon), 10,
                       what=f"{daemon} started")
        wait_until(lambda: port_open(d.port), 15, what="wsmtp listening")
        yield d
    except BaseException:
        for daemon in UNITS:
            try:
                print(f"----- {daemon} log -----\n{d.log(daemon)[-3000:]}")
            except OSError:
                pass
        raise
    finally:
        d.close()


def port_open(port):
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=2) as s:
            s.noop()
        return True
    except OSError:
        return False


def test_shipped_units_give_each_daemon_its_own_user_and_credential():
    units = {d: unit_settings(d) for d in UNITS}
    users = [s["user"] for s in units.values()]
    assert len(set(users)) == 4, f"daemons share a user: {users}"
    assert "root" not in users
    creds = [path for s in units.values() for _, path in s["credentials"]]
    assert len(creds) == 4 and len(set(creds)) == 4, f"each daemon loads its own credential: {creds}"
    for daemon, s in units.items():
        assert "PGPASSFILE=%d/pgpass" in s["environment"], f"{daemon}: libpq must read the loaded credential"


def test_each_daemon_and_its_workers_run_as_its_own_user(deployment):
    d = deployment
    for daemon, s in d.units.items():
        p = d.procs[daemon]
        assert p.poll() is None, f"{daemon} exited:\n{d.log(daemon)}"
        want = d.ns.uid[s["user"]]
        tree = process_tree(p.pid)
        for pid in tree:
            try:
                assert uids(pid) == [want] * 4, f"{daemon} pid {pid} runs as {uids(pid)}, not {s['user']} ({want})"
            except FileNotFoundError:
                pass  # a worker that just left
    # wroute and wdeliver are supervisors: their workers are in the tree too.
    assert len(process_tree(d.procs["wroute"].pid)) >= 2


def test_mail_flows_with_least_privilege_roles(deployment):
    d = deployment
    with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
        s.sendmail("bob@remote.example", ["alice@example.test"], b"Subject: hi\r\n\r\nleast privilege\r\n")
    new = os.path.join(d.mail_root, "alice", "Maildir", "new")
    wait_until(lambda: os.path.isdir(new) and os.listdir(new), 30, what="delivery to the Maildir")
    files = os.listdir(new)
    assert len(files) == 1
    st = os.stat(os.path.join(new, files[0]))
    assert st.st_uid == d.ns.uid[d.units["wdeliver"]["user"]], "the deliverer writes as its own user"
    with open(os.path.join(new, files[0]), "rb") as f:
        assert b"least privilege" in f.read()


def psql_as_listener(d, conninfo, sql="SELECT 1"):
    return d.as_listener(["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-c", sql])


def test_listener_cannot_log_in_as_another_daemon_or_the_superuser(deployment):
    d = deployment
    sock = f"host={d.pg.tmp} port={d.pg.port} dbname=wsmtp"
    # Its own role works (the control for the refusals below).
    own = psql_as_listener(d, sock)
    assert own.returncode == 0 and own.stdout.strip() == "1", own.stdout
    for role in ("wroute", "wdeliver", "wreaper"):
        r = psql_as_listener(d, f"{sock} user={d.units[role]['user']}")
        assert r.returncode != 0 and "Peer authentication failed" in r.stdout, f"{role}: {r.stdout}"
    r = psql_as_listener(d, f"{sock} user=postgres")
    assert r.returncode != 0 and "no pg_hba.conf entry" in r.stdout, r.stdout
    r = psql_as_listener(d, f"host=127.0.0.1 port={d.pg.port} dbname=wsmtp user=postgres")
    assert r.returncode != 0 and re.search(r"password authentication failed|no password supplied", r.stdout), \
        r.stdout


def test_listener_role_cannot_touch_later_stages(deployment):
    d = deployment
    sock = f"host={d.pg.tmp} port={d.pg.port} dbname=wsmtp"
    # A message past the listener's stage: its mailbox cannot be written, so it
    # waits in the queue (deferred) for the length of the test.
    with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as s:
        s.sendmail("bob@remote.example", ["stuck@example.test"], b"Subject: stuck\r\n\r\nwaits\r\n")

    def states():
        return d.pg.psql("SELECT string_agg(id || ':' || state, ',' ORDER BY id) FROM messages WHERE state > 0",
                         dbname="wsmtp")

    wait_until(lambda: states(), 30, what="a message past state 0")
    before = states()
    for sql in ("SELECT count(*) FROM deliveries", "DELETE FROM deliveries", "SELECT count(*) FROM relays"):
        r = psql_as_listener(d, sock, sql)
        assert r.returncode != 0 and "permission denied" in r.stdout, f"{sql!r} as the listener: {r.stdout}"
    # Row-level security keeps every message past state 0 out of the listener's reach.
    for sql, none in (("UPDATE messages SET state = 5 WHERE state > 0", "UPDATE 0"),
                      ("DELETE FROM messages WHERE state > 0", "DELETE 0")):
        r = d.as_listener(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-A", "-t", "-d", sock, "-c", sql])
        assert "permission denied" in r.stdout or r.stdout.strip() == none, f"{sql!r} as the listener: {r.stdout}"
    assert states() == before


def test_listener_cannot_read_other_daemons_secrets(deployment):
    d = deployment
    for daemon in ("wroute", "wdeliver", "wreaper"):
        r = d.as_listener(["cat", d.credentials[daemon]])
        assert r.returncode != 0 and "Permission denied" in r.stdout, f"{daemon}'s credential: {r.stdout}"
        assert "secret" not in r.stdout
        pid = d.procs[daemon].pid
        r = d.as_listener(["cat", f"/proc/{pid}/environ"])
        assert r.returncode != 0 and "Permission denied" in r.stdout, f"{daemon}'s environment: {r.stdout}"
    r = d.as_listener(["cat", d.credentials["wsmtp"]])
    assert r.returncode == 0 and "wsmtp-secret" in r.stdout, "the control: its own credential is readable"
    r = d.as_listener(["cat", d.admin_config])
    assert r.returncode != 0, "the operator's configuration is root's"

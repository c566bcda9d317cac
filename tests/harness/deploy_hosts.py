"""Harness for the deployment tests: separate "hosts" on one machine.

- Lab: network namespaces joined by veth pairs to a private bridge that lives in
  its own namespace, so nothing touches the machine's real network. Every
  namespace (and with it every veth and the bridge) is removed by close(), which
  also runs when the test fails.
- PgHost: a throwaway PostgreSQL with TLS (ssl=on) listening on one address,
  optionally inside a namespace; pg_hba allows only hostssl from the test
  networks. Administered over its Unix socket, which every namespace can reach.
- Certificates: a throwaway CA and server certificates made with openssl.
- example_config(): an example file from deploy/examples with some keys
  overridden, so tests run the shipped examples rather than copies of them.

A test that cannot run here (no namespaces, no openssl) is marked skipped by
pytest; tests/integration/e2e/conftest.py turns "all skipped" into exit code 77
for ctest.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pgtmp import _pg_bindir  # noqa: E402

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy", "examples")


def run(cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


# --- certificates -------------------------------------------------------------

def make_ca(directory, name="wsmtp test CA"):
    crt, key = os.path.join(directory, f"{name.replace(' ', '_')}.crt"), os.path.join(directory, f"{name.replace(' ', '_')}.key")
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
         "-keyout", key, "-out", crt])
    return crt, key


def make_cert(directory, ca, common_name, ips=(), dns=()):
    """A server certificate signed by ca (crt, key) for the given names."""
    base = os.path.join(directory, common_name)
    alt = ",".join([f"DNS:{d}" for d in (common_name, *dns)] + [f"IP:{i}" for i in ips])
    ext = base + ".ext"
    with open(ext, "w") as f:
        f.write(f"subjectAltName={alt}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n")
    run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={common_name}",
         "-keyout", base + ".key", "-out", base + ".csr"])
    run(["openssl", "x509", "-req", "-in", base + ".csr", "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
         "-days", "2", "-extfile", ext, "-out", base + ".crt"])
    return base + ".crt", base + ".key"


# --- configuration --------------------------------------------------------------

def example_config(name, overrides):
    """Text of deploy/examples/<name> with overrides {section: {key: value}}
    applied: a set key is replaced in place, a missing one is added to its
    section (the section is created if needed)."""
    with open(os.path.join(EXAMPLES, name)) as f:
        lines = f.read().splitlines()
    pending = {s: dict(kv) for s, kv in overrides.items()}
    out, section = [], None

    def flush(sec):
        for k, v in pending.pop(sec, {}).items():
            out.append(f"{k} = {v}")

    for line in lines:
        m = re.match(r"^\[(\w+)\]\s*$", line)
        if m:
            flush(section)
            section = m.group(1)
            out.append(line)
            continue
        m = re.match(r"^(\w+)\s*=", line)
        if m and section in pending and m.group(1) in pending[section]:
            out.append(f"{m.group(1)} = {pending[section].pop(m.group(1))}")
            continue
        out.append(line)
    flush(section)
    for sec in list(pending):
        out.append(f"[{sec}]")
        flush(sec)
    return "\n".join(out) + "\n"


# --- network namespaces ---------------------------------------------------------

class Lab:
    """Hosts on a private bridge: 10.77.0.0/24, the bridge in its own namespace."""

    SUBNET = "10.77.0"

    def __init__(self):
        self.tag = uuid.uuid4().hex[:6]
        self.namespaces = []
        self.hosts = {}
        self.bridge_ns = self._add_ns("br")
        self._ip(self.bridge_ns, "link", "add", "br0", "type", "bridge")
        self._ip(self.bridge_ns, "link", "set", "br0", "up")

    @staticmethod
    def probe():
        """None if namespaces, veths and bridges can be made here, else the reason."""
        name = f"wsdp-probe-{uuid.uuid4().hex[:6]}"
        r = run(["ip", "netns", "add", name], check=False)
        if r.returncode != 0:
            return f"cannot create a network namespace: {r.stdout.strip()}"
        try:
            r = run(["ip", "-n", name, "link", "add", "pv0", "type", "veth", "peer", "name", "pv1"], check=False)
            if r.returncode != 0:
                return f"cannot create a veth pair: {r.stdout.strip()}"
            r = run(["ip", "-n", name, "link", "add", "pbr", "type", "bridge"], check=False)
            if r.returncode != 0:
                return f"cannot create a bridge: {r.stdout.strip()}"
        finally:
            run(["ip", "netns", "del", name], check=False)
        return None

    def _add_ns(self, short):
        name = f"wsdp-{self.tag}-{short}"
        run(["ip", "netns", "add", name])
        self.namespaces.append(name)
        run(["ip", "-n", name, "link", "set", "lo", "up"])
        return name

    @staticmethod
    def _ip(ns, *args):
        return run(["ip", "-n", ns, *args])

    def add_host(self, short, octet):
        """A namespace with eth0 = 10.77.0.<octet>/24 on the bridge; returns its address."""
        ns = self._add_ns(short)
        peer = f"v{short}"
        run(["ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", peer,
             "netns", self.bridge_ns])
        self._ip(self.bridge_ns, "link", "set", peer, "master", "br0", "up")
        addr = f"{self.SUBNET}.{octet}"
        self._ip(ns, "addr", "add", f"{addr}/24", "dev", "eth0")
        self._ip(ns, "link", "set", "eth0", "up")
        self.hosts[short] = (ns, addr)
        return addr

    def ns(self, short):
        return self.hosts[short][0]

    def addr(self, short):
        return self.hosts[short][1]

    def prefix(self, short):
        return ["ip", "netns", "exec", self.ns(short)]

    def cut(self, short):
        """The host's cable pulled: its link goes down."""
        self._ip(self.ns(short), "link", "set", "eth0", "down")

    def close(self):
        for ns in reversed(self.namespaces):
            run(["ip", "netns", "del", ns], check=False)
        self.namespaces = []


# --- PostgreSQL with TLS ----------------------------------------------------------

class PgHost:
    """PostgreSQL listening on `address` with ssl=on, started inside `netns_prefix`
    (a command prefix such as ["ip", "netns", "exec", NS]; empty for none)."""

    def __init__(self, tmp, address, cert, key, netns_prefix=(), hba_networks=("0.0.0.0/0",), port=5432):
        self.bindir = _pg_bindir()
        self.dir = os.path.join(tmp, "pg")
        self.datadir = os.path.join(self.dir, "data")
        os.makedirs(self.dir)
        self.as_root = os.geteuid() == 0
        self.prefix = list(netns_prefix)
        self.address, self.port = address, port
        if self.as_root:
            shutil.chown(self.dir, "nobody", "nogroup")
            os.chmod(tmp, 0o755)
        self._tool("initdb", "-D", self.datadir, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8",
                   "--locale=C.UTF-8")
        # The server reads its key as its own user and refuses a key others can read.
        for src, dst in ((cert, "server.crt"), (key, "server.key")):
            path = os.path.join(self.datadir, dst)
            shutil.copy(src, path)
            os.chmod(path, 0o600)
            if self.as_root:
                shutil.chown(path, "nobody", "nogroup")
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as conf:
            conf.write(f"listen_addresses = '{address}'\nport = {self.port}\n"
                       f"unix_socket_directories = '{self.dir}'\nssl = on\n"
                       "ssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
                       "fsync = off\nmax_connections = 200\n")
        with open(os.path.join(self.datadir, "pg_hba.conf"), "w") as hba:
            hba.write("local all all trust\n")
            for net in hba_networks:
                # TLS only: a client that does not ask for it is refused.
                hba.write(f"hostssl all all {net} trust\n")
        self._tool("pg_ctl", "-D", self.datadir, "-l", os.path.join(self.dir, "postgres.log"), "-w", "-t", "60",
                   "start", prefix=self.prefix)

    def _tool(self, tool, *args, prefix=()):
        cmd = [os.path.join(self.bindir, tool), *args]
        if self.as_root:
            cmd = ["runuser", "-u", "nobody", "--", *cmd]
        return run([*prefix, *cmd], cwd=self.dir)

    def local_conninfo(self, dbname="postgres", user="postgres"):
        return f"host={self.dir} port={self.port} user={user} dbname={dbname}"

    def tls_conninfo(self, dbname, user, ca, host=None):
        return (f"host={host or self.address} port={self.port} dbname={dbname} user={user} "
                f"sslmode=verify-full sslrootcert={ca}")

    def psql(self, sql, dbname="postgres"):
        r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d",
                            self.local_conninfo(dbname), "-c", sql],
                           check=True, stdout=subprocess.PIPE, text=True)
        return r.stdout.strip()

    def log(self):
        try:
            with open(os.path.join(self.dir, "postgres.log")) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        cmd = [os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir, "-m", "immediate", "-w", "stop"]
        if self.as_root:
            cmd = ["runuser", "-u", "nobody", "--", *cmd]
        run(cmd, check=False)


# --- processes ----------------------------------------------------------------------

class Procs:
    """Daemons started by a test, each stopped by its PID."""

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.procs = {}

    def start(self, name, cmd):
        log = open(os.path.join(self.log_dir, f"{name}.log"), "ab")
        self.procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return self.procs[name]

    def kill(self, name, sig=signal.SIGKILL):
        p = self.procs.pop(name)
        if p.poll() is None:
            # "ip netns exec" execs the daemon, so p.pid is the daemon and leads its
            # own process group, which holds its worker processes too.
            os.killpg(p.pid, sig)
        p.wait(timeout=30)

    def alive(self, name):
        return self.procs[name].poll() is None

    def log(self, name):
        with open(os.path.join(self.log_dir, f"{name}.log"), errors="replace") as f:
            return f.read()

    def stop_all(self):
        for name in list(self.procs):
            p = self.procs.pop(name)
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.kill(p.pid, signal.SIGKILL)
                    p.wait()


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")

"""The real milters from Debian's packages, as private test instances.

- Rspamd: rspamd with its proxy worker in milter mode (self_scan, no redis,
  no controller), on a loopback port; stop() and start() again on the same port.
- Dns: unbound, authoritative for the records a test gives, on 127.0.0.1:53 of
  a network namespace of its own; /etc/netns/<name>/resolv.conf points the
  namespace's system resolver at it. The verifying milters run inside that
  namespace, so what they resolve comes from the test, never from the network.
- OpenDkim, OpenDmarc: the milters on Unix sockets in the test's directory,
  which an MTA outside the namespace reaches as unix:/path.

Each daemon is started in the foreground in its own process group and stopped
by that group's id; the namespace and /etc/netns/<name> are removed by close().
Nothing here touches the system's own rspamd, opendkim, opendmarc or unbound
(their services are never started). The namespace needs root (the suite runs
as root); probe_netns() says why it cannot be made.
"""
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import uuid

from pgtmp import free_port

# The milter protocol's first exchange (SMFIC_OPTNEG, version 6): a milter
# that answers it is ready for an MTA. Sendmail's libmilter and rspamd both answer.
_OPTNEG = struct.pack(">cIII", b"O", 6, 0x1FF, 0)


def _run(cmd, check=True, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stdout.strip()[-2000:]}")
    return r


def milter_ready(address, timeout=1.0):
    """True if the milter at address ("inet:HOST:PORT" or "unix:/path") answers option negotiation."""
    kind, _, where = address.partition(":")
    try:
        if kind == "unix":
            s = socket.socket(socket.AF_UNIX)
            target = where
        else:
            host, _, port = where.rpartition(":")
            s = socket.socket(socket.AF_INET)
            target = (host, int(port))
        with s:
            s.settimeout(timeout)
            s.connect(target)
            s.sendall(struct.pack(">I", len(_OPTNEG)) + _OPTNEG)
            header = s.recv(5)
            return len(header) == 5 and header[4:5] == b"O"
    except OSError:
        return False


class _Daemon:
    """One foreground daemon in its own process group, its output in log_path."""

    def __init__(self, name, log_path):
        self.name, self.log_path, self.proc = name, log_path, None

    def spawn(self, cmd):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, address, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.log()[-3000:]}")
            if milter_ready(address):
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready on {address} after {timeout}s:\n{self.log()[-3000:]}")

    def stop(self):
        """SIGTERM to the group we started (runuser or ip netns exec and the daemon's workers)."""
        self.signal_stop()
        self.wait_stopped()

    def signal_stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)

    def wait_stopped(self):
        """libmilter notices SIGTERM within five seconds: several daemons are stopped in parallel."""
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        # Workers that outlived their master still belong to the group.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc = None

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


class Rspamd:
    """rspamd 3.4 with only what a milter needs: the proxy worker with
    milter = yes scanning in-process (self_scan), the built-in GTUBE check, and
    milter_headers adding X-Spamd-Result, X-Rspamd-Server, X-Rspamd-Queue-Id,
    X-Rspamd-Action and X-Spam-Status to every message (also local and
    authenticated senders: the tests send from loopback). Modules that need
    configuration, redis or the network stay off (rspamd disables unconfigured
    ones); its DNS points at a closed port so no lookup leaves the machine.
    Runs as _rspamd (the package's user): rspamd refuses to run as root."""

    USER = "_rspamd"

    def __init__(self, tmpdir, port=None, workers=1):
        """workers: proxy worker processes (rspamd's count): one scans one message at a time."""
        self.dir = os.path.join(tmpdir, "rspamd")
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(tmpdir, 0o755)
        self.port = port or free_port()
        self.milter = f"inet:127.0.0.1:{self.port}"
        self.hostname = "rspamd.test"
        # A short public-suffix list: compiling the packaged one takes rspamd
        # ten seconds at every start, and the tests' domains are all here.
        with open(os.path.join(self.dir, "tld.dat"), "w") as f:
            f.write("com\nnet\norg\nexample\ntest\n")
        self.config = os.path.join(self.dir, "rspamd.conf")
        with open(self.config, "w") as f:
            f.write(f"""lua = "$RULESDIR/rspamd.lua"
.include "$CONFDIR/metrics.conf"
.include "$CONFDIR/actions.conf"
.include "$CONFDIR/groups.conf"
modules {{ path = "$PLUGINSDIR"; }}
options {{
  pidfile = "{self.dir}/rspamd.pid";
  dns {{ nameserver = ["127.0.0.1:9"]; timeout = 1s; retransmits = 1; }}
  filters = "";
  hs_cache_dir = "{self.dir}/";
  cache_file = "{self.dir}/symbols.cache";
  control_socket = "{self.dir}/control.sock mode=0600";
  url_tld = "{self.dir}/tld.dat";
  tempdir = "{self.dir}";
  task_timeout = 8s;
}}
logging {{ type = "file"; filename = "{self.dir}/rspamd.log"; level = "info"; }}
worker "rspamd_proxy" {{
  bind_socket = "127.0.0.1:{self.port}";
  milter = yes;
  timeout = 120s;
  count = {workers};
  upstream "local" {{ default = yes; self_scan = yes; }}
  reject_message = "Spam message rejected";
}}
milter_headers {{
  skip_local = false;
  skip_authenticated = false;
  use = ["x-spamd-result", "x-rspamd-server", "x-rspamd-queue-id", "x-rspamd-action", "x-spam-status"];
  routines {{ x-rspamd-server {{ hostname = "{self.hostname}"; }} }}
}}
""")
        shutil.chown(self.dir, self.USER, self.USER)
        for name in os.listdir(self.dir):
            shutil.chown(os.path.join(self.dir, name), self.USER, self.USER)
        self.daemon = _Daemon("rspamd", os.path.join(self.dir, "rspamd.out"))
        self.start()

    def start(self):
        cmd = ["rspamd", "-f", "-c", self.config]
        for var in ("DBDIR", "RUNDIR", "LOGDIR", "LOCAL_CONFDIR"):
            cmd.append(f"--var={var}={self.dir}")
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", self.USER, "--", *cmd]
        self.daemon.spawn(cmd)
        self.daemon.wait_ready(self.milter)

    def stop(self):
        self.daemon.stop()

    def log(self):
        try:
            with open(os.path.join(self.dir, "rspamd.log"), errors="replace") as f:
                text = f.read()
        except OSError:
            text = ""
        # Its start-up lists every module it leaves off: noise in a failure report.
        return "\n".join(line for line in text.splitlines() if "rspamd_config_is_module_enabled" not in line)

    def close(self):
        self.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def probe_netns():
    """None if a network namespace can be made here (root), else the reason."""
    name = f"wsmilt-probe-{uuid.uuid4().hex[:6]}"
    r = _run(["ip", "netns", "add", name], check=False)
    if r.returncode != 0:
        return f"cannot create a network namespace: {r.stdout.strip()}"
    _run(["ip", "netns", "del", name], check=False)
    return None


def _txt_strings(value):
    """A TXT value as unbound's local-data wants it: quoted strings of at most 255 bytes (RFC 1035 3.3.14)."""
    return " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))


class Dns:
    """unbound in a network namespace of its own, authoritative (local-data) for
    records = [(name, type, value)], e.g. ("sel._domainkey.sender.example", "TXT",
    "v=DKIM1; k=rsa; p=..."). Every other name is answered NXDOMAIN at once
    (local-zone "." static): nothing is looked up on the network, and a missing
    record fails fast instead of timing out. .prefix runs a command inside the
    namespace, where the system resolver (/etc/resolv.conf) asks this server."""

    def __init__(self, tmpdir, records):
        self.dir = os.path.join(tmpdir, "dns")
        os.makedirs(self.dir, exist_ok=True)
        self.netns = f"wsmilt-{uuid.uuid4().hex[:8]}"
        self.etc = os.path.join("/etc/netns", self.netns)
        _run(["ip", "netns", "add", self.netns])
        self.prefix = ["ip", "netns", "exec", self.netns]
        self.daemon = None
        try:
            _run(["ip", "-n", self.netns, "link", "set", "lo", "up"])
            os.makedirs(self.etc)
            with open(os.path.join(self.etc, "resolv.conf"), "w") as f:
                f.write("nameserver 127.0.0.1\noptions timeout:2 attempts:1\n")
            # /etc/hosts is not replaced: names there (localhost) resolve as outside.
            data = []
            for name, rtype, value in records:
                rdata = _txt_strings(value) if rtype.upper() == "TXT" else value
                data.append(f"  local-data: '{name.rstrip('.')}. 300 IN {rtype} {rdata}'")
            config = os.path.join(self.dir, "unbound.conf")
            with open(config, "w") as f:
                f.write(f"""server:
  interface: 127.0.0.1
  port: 53
  do-ip6: no
  do-daemonize: no
  chroot: ""
  username: ""
  directory: "{self.dir}"
  pidfile: "{self.dir}/unbound.pid"
  logfile: "{self.dir}/unbound.log"
  use-syslog: no
  verbosity: 1
  log-queries: yes
  module-config: "iterator"
  local-zone: "." static
{chr(10).join(data)}
remote-control:
  control-enable: no
""")
            _run(["unbound-checkconf", config])
            self.daemon = _Daemon("unbound", os.path.join(self.dir, "unbound.out"))
            self.daemon.spawn([*self.prefix, "unbound", "-d", "-c", config])
            self._wait_answering()
        except BaseException:
            self.close()
            raise

    def _wait_answering(self, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.daemon.proc.poll() is not None:
                raise RuntimeError(f"unbound exited:\n{self.log()}")
            # The SOA-less static root answers NXDOMAIN: any answer means it serves.
            r = _run([*self.prefix, "/usr/bin/python3", "-c",
                      "import dns.resolver,sys\n"
                      "try: dns.resolver.resolve('probe.invalid', 'A', lifetime=1)\n"
                      "except dns.resolver.NXDOMAIN: sys.exit(0)\n"
                      "except Exception as e: print(e); sys.exit(1)\n"], check=False)
            if r.returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError(f"unbound does not answer in {self.netns}:\n{self.log()}")

    def query(self, name, rtype="TXT"):
        """The answers for name, as the namespace's system resolver gets them (for a failure report)."""
        r = _run([*self.prefix, "/usr/bin/python3", "-c",
                  "import dns.resolver,sys\n"
                  f"for a in dns.resolver.resolve({name!r}, {rtype!r}, lifetime=2): print(a.to_text())\n"],
                 check=False)
        return r.stdout.strip()

    def log(self):
        out = []
        for name in ("unbound.out", "unbound.log"):
            try:
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    out.append(f.read())
            except OSError:
                pass
        return "\n".join(out)

    def close(self):
        if self.daemon is not None:
            self.daemon.stop()
            self.daemon = None
        _run(["ip", "netns", "del", self.netns], check=False)
        shutil.rmtree(self.etc, ignore_errors=True)
        try:
            os.rmdir("/etc/netns")  # only if no other namespace has a file there
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class DkimKey:
    """A key pair made by opendkim-genkey: .private (the PEM file), .txt (the
    DNS TXT value "v=DKIM1; h=sha256; k=rsa; p=..."), .record (for Dns)."""

    def __init__(self, tmpdir, domain, selector="sel", bits=2048):
        self.domain, self.selector = domain, selector
        self.dir = os.path.join(tmpdir, f"dkim-{domain}")
        os.makedirs(self.dir, exist_ok=True)
        _run(["opendkim-genkey", "-b", str(bits), "-h", "sha256", "-d", domain, "-s", selector, "-D", self.dir])
        self.private = os.path.join(self.dir, f"{selector}.private")
        os.chmod(self.private, 0o600)
        with open(os.path.join(self.dir, f"{selector}.txt")) as f:
            zone = f.read()
        # sel._domainkey IN TXT ( "v=DKIM1; h=sha256; k=rsa; " "p=MIIB..." "..." )  ; ----- DKIM key ...
        body = zone[zone.index("(") + 1:zone.index(")")]
        self.txt = "".join(part for i, part in enumerate(body.split('"')) if i % 2 == 1)
        self.name = f"{selector}._domainkey.{domain}"
        self.record = (self.name, "TXT", self.txt)

    def dnsfunc(self, name, timeout=5):
        """For dkim.verify(dnsfunc=...): this key's record, nothing else."""
        wanted = name.decode() if isinstance(name, bytes) else name
        return self.txt.encode() if wanted.rstrip(".") == self.name else None


def _hosts_file(path, hosts):
    # An explicit list: both milters' defaults count 127.0.0.1 as internal (sign,
    # don't check), and the test clients all connect from loopback.
    with open(path, "w") as f:
        f.write("".join(f"{h}\n" for h in (hosts or ["192.0.2.1"])))
    return path


class OpenDkim:
    """OpenDKIM on unix:<tmpdir>/opendkim/opendkim.sock (.milter).
    mode "s", "v" or "sv" (sign and verify: signs for authenticated clients and
    for internal_hosts, verifies the rest). key: a DkimKey to sign with (its
    domain and selector). dns: a Dns to verify against (the milter then runs in
    its namespace and asks it directly, Nameservers 127.0.0.1). Adds
    Authentication-Results with authserv_id to every message it verifies.
    OpenDKIM refuses a configuration file or key on a path others can write
    (the sticky /tmp included): those two live in a root-only directory under
    /run (.secure_dir), removed by close()."""

    def __init__(self, tmpdir, mode="sv", key=None, dns=None, internal_hosts=(), authserv_id="mx.example.test",
                 name="opendkim"):
        self.dir = os.path.join(tmpdir, name)
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(tmpdir, 0o755)
        os.chmod(self.dir, 0o755)
        self.secure_dir = tempfile.mkdtemp(prefix="wsmtp-opendkim-", dir="/run" if os.geteuid() == 0 else None)
        self.socket = os.path.join(self.dir, "opendkim.sock")
        self.milter = f"unix:{self.socket}"
        lines = [
            f"Mode {mode}",
            f"Socket local:{self.socket}",
            f"PidFile {self.dir}/opendkim.pid",
            # Postfix's cleanup (user postfix) connects too when the harness is checked against it.
            "UMask 000",
            "Syslog yes",
            "LogResults yes",
            "LogWhy yes",
            f"AuthservID {authserv_id}",
            "AlwaysAddARHeader yes",
            "Canonicalization relaxed/simple",
            "SignatureAlgorithm rsa-sha256",
            f"InternalHosts {_hosts_file(os.path.join(self.secure_dir, 'internal_hosts'), list(internal_hosts))}",
            "OversignHeaders From",
        ]
        if key is not None:
            private = os.path.join(self.secure_dir, os.path.basename(key.private))
            shutil.copy(key.private, private)
            os.chmod(private, 0o600)
            lines += [f"Domain {key.domain}", f"Selector {key.selector}", f"KeyFile {private}"]
        if dns is not None:
            lines.append("Nameservers 127.0.0.1")
        self.config = os.path.join(self.secure_dir, "opendkim.conf")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.prefix = dns.prefix if dns is not None else []
        self.daemon = _Daemon("opendkim", os.path.join(self.dir, "opendkim.out"))
        self.start()

    def start(self):
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        self.daemon.spawn([*self.prefix, "opendkim", "-f", "-x", self.config])
        self.daemon.wait_ready(self.milter)

    def stop(self):
        self.daemon.stop()

    def log(self):
        return self.daemon.log()

    def close(self):
        self.stop()
        shutil.rmtree(self.secure_dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class OpenDmarc:
    """OpenDMARC on unix:<tmpdir>/opendmarc/opendmarc.sock (.milter), in dns's
    namespace: rejects a message whose From: domain publishes p=reject and
    fails (RejectFailures), checks SPF itself against that DNS
    (SPFSelfValidate), and trusts the DKIM results in Authentication-Results
    from authserv_id (OpenDKIM's). Clients from loopback are checked too (IgnoreHosts)."""

    def __init__(self, tmpdir, dns, authserv_id="mx.example.test", ignore_hosts=()):
        self.dir = os.path.join(tmpdir, "opendmarc")
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(tmpdir, 0o755)
        os.chmod(self.dir, 0o755)
        self.socket = os.path.join(self.dir, "opendmarc.sock")
        self.milter = f"unix:{self.socket}"
        self.config = os.path.join(self.dir, "opendmarc.conf")
        with open(self.config, "w") as f:
            f.write("\n".join([
                f"Socket local:{self.socket}",
                f"PidFile {self.dir}/opendmarc.pid",
                "UMask 000",
                "Syslog true",
                f"AuthservID {authserv_id}",
                f"TrustedAuthservIDs {authserv_id}",
                "RejectFailures true",
                "SPFSelfValidate true",
                "SPFIgnoreResults true",
                "FailureReports false",
                "IgnoreAuthenticatedClients true",
                f"IgnoreHosts {_hosts_file(os.path.join(self.dir, 'ignore_hosts'), list(ignore_hosts))}",
            ]) + "\n")
        self.prefix = dns.prefix
        self.daemon = _Daemon("opendmarc", os.path.join(self.dir, "opendmarc.out"))
        self.start()

    def start(self):
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        self.daemon.spawn([*self.prefix, "opendmarc", "-f", "-c", self.config])
        self.daemon.wait_ready(self.milter)

    def stop(self):
        self.daemon.stop()

    def log(self):
        return self.daemon.log()

    def close(self):
        self.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --- messages and checks ------------------------------------------------------------

def ordinary_message(sender, recipient, body, subject="milter test"):
    return (f"From: {sender}\r\nTo: {recipient}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{abs(hash((sender, body)))}@client.example>\r\n"
            "Date: Sat, 05 Dec 2026 12:00:00 +0000\r\n\r\n"
            f"{body}\r\n")


def dkim_sign(message, key):
    """message (str or bytes) with a DKIM-Signature by key, made by python3-dkim (a signer other than OpenDKIM)."""
    import dkim  # python3-dkim, under Debian's /usr/bin/python3
    raw = message.encode() if isinstance(message, str) else message
    with open(key.private, "rb") as f:
        private = f.read()
    return dkim.sign(raw, key.selector.encode(), key.domain.encode(), private,
                     include_headers=[b"from", b"to", b"subject", b"message-id", b"date"]) + raw


def dkim_verify(raw, key):
    """True if python3-dkim accepts the first DKIM-Signature of raw against key's public key
    (no DNS: the key's own record)."""
    import dkim
    return bool(dkim.verify(raw, dnsfunc=key.dnsfunc))


def auth_results(raw):
    """The Authentication-Results header fields of a message, each unfolded to one line."""
    import email
    msg = email.message_from_bytes(raw)
    return [" ".join(str(v).split()) for v in msg.get_all("Authentication-Results", [])]


class StandardPeers:
    """The set the milter tests share: unbound with the records below in a namespace,
    rspamd, OpenDKIM signing for trusted clients (signing_dkim, InternalHosts
    127.0.0.1: Postfix cannot authenticate here), OpenDKIM signing for
    authenticated clients and verifying the rest against the DNS
    (verifying_dkim), and OpenDMARC. Keys: signer (signer.example, ours) and
    sender (sender.example, a remote domain whose mail arrives signed).

    Records: both keys; sender.example SPF and DMARC p=none (its tampered
    message must arrive to show dkim=fail); signer.example DMARC p=reject (its
    signed mail passes by DKIM); dmarc.example DMARC p=reject with
    no key, so mail with From: dmarc.example and an envelope of another domain
    fails DMARC (SPF is not aligned: OpenDMARC's SPF passes any loopback client)."""

    def __init__(self, tmpdir, authserv_id="mx.example.test"):
        self.closers = []
        try:
            self.signer = DkimKey(tmpdir, "signer.example")
            self.sender = DkimKey(tmpdir, "sender.example")
            self.dns = self._own(Dns(tmpdir, [
                self.signer.record, self.sender.record,
                ("signer.example", "TXT", "v=spf1 ip4:127.0.0.1 -all"),
                ("_dmarc.signer.example", "TXT", "v=DMARC1; p=reject"),
                ("sender.example", "TXT", "v=spf1 ip4:127.0.0.1 -all"),
                ("_dmarc.sender.example", "TXT", "v=DMARC1; p=none"),
                ("dmarc.example", "TXT", "v=spf1 ip4:192.0.2.1 -all"),
                ("_dmarc.dmarc.example", "TXT", "v=DMARC1; p=reject"),
                ("other.example", "TXT", "v=spf1 ip4:127.0.0.1 -all"),
            ]))
            self.rspamd = self._own(Rspamd(tmpdir))
            self.signing_dkim = self._own(OpenDkim(tmpdir, "s", key=self.signer, internal_hosts=["127.0.0.1"],
                                                   authserv_id=authserv_id, name="opendkim-signing"))
            self.verifying_dkim = self._own(OpenDkim(tmpdir, "sv", key=self.signer, dns=self.dns,
                                                     authserv_id=authserv_id, name="opendkim-verifying"))
            self.dmarc = self._own(OpenDmarc(tmpdir, self.dns, authserv_id=authserv_id))
        except BaseException:
            self.close()
            raise

    def _own(self, peer):
        self.closers.append(peer)
        return peer

    def signed_inbound(self, body, tamper=False, recipient="alice@example.test"):
        """A message from sender.example signed with its key; tamper changes the body after signing."""
        raw = dkim_sign(ordinary_message(f"bob@{self.sender.domain}", recipient, body), self.sender)
        return raw.replace(body.encode(), (body + " (changed)").encode()) if tamper else raw

    def dmarc_pass_by_dkim_only(self, recipient="alice@example.test"):
        """(envelope sender, recipients, message): From: signer.example (p=reject), signed with
        its key, sent with another domain's envelope. SPF passes but is not aligned, so
        OpenDMARC passes it only if it sees OpenDKIM's dkim=pass (TrustedAuthservIDs)."""
        sender = f"news@{self.signer.domain}"
        return ("bounces@other.example", [recipient],
                dkim_sign(ordinary_message(sender, recipient, "aligned by DKIM alone"), self.signer))

    def dmarc_failure(self, recipient="alice@example.test"):
        """(envelope sender, recipients, message) that fails dmarc.example's p=reject."""
        return ("mallory@other.example", [recipient],
                ordinary_message("ceo@dmarc.example", recipient, "spoofed From: domain"))

    def log_sources(self):
        """(title, text function) for tests/integration/e2e/conftest.py's failure_logs."""
        return [("rspamd log", self.rspamd.log), ("unbound log", self.dns.log),
                ("opendkim (signing) output", self.signing_dkim.log),
                ("opendkim (verifying) output", self.verifying_dkim.log),
                ("opendmarc output", self.dmarc.log)]

    def close(self):
        for peer in self.closers:
            peer.daemon.signal_stop()
        for peer in reversed(self.closers):
            peer.close()
        self.closers = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

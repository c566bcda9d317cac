#!/usr/bin/env python3
"""The suite's preflight: every outside tool and capability the tests use, checked
before any test runs (ctest runs it as the fixture every other test requires).

A missing tool must never show up as a protocol failure deep inside a test
(swaks without Net::SSLeay prints "TLS not available" and a TLS test then fails
on its reply). Each check names the Debian package that provides what is missing,
one line per package, and the preflight fails; deploy/install-deps installs them.

Checks come in a table so that a later feature adds its tool as one row.
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile


def run(cmd, **kw):
    try:
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60, **kw)
    except (OSError, subprocess.TimeoutExpired) as e:
        return subprocess.CompletedProcess(cmd, 127, str(e))


def program(name, *dirs):
    """A program on PATH or in one of dirs (the tests call Postfix's tools from /usr/sbin)."""
    found = shutil.which(name)
    if found:
        return found
    for d in dirs:
        path = os.path.join(d, name)
        if os.access(path, os.X_OK):
            return path
    return None


def has_program(name, *dirs):
    return lambda: None if program(name, *dirs) else f"{name} not found"


def swaks_supports(feature):
    """swaks --support lists "=== <feature> supported" or "*** <feature> not available: requires <module>"."""
    def check():
        if not program("swaks"):
            return "swaks not found"
        out = run(["swaks", "--support"]).stdout
        if f"=== {feature} supported" in out:
            return None
        why = [line for line in out.splitlines() if line.startswith(f"*** {feature}")]
        return why[0].lstrip("* ") if why else f"swaks --support does not list {feature}"
    return check


def postgres_server():
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not found:
        return "no /usr/lib/postgresql/*/bin/initdb"
    bindir = os.path.dirname(sorted(found)[-1])
    missing = [p for p in ("postgres", "pg_ctl") if not os.access(os.path.join(bindir, p), os.X_OK)]
    return f"{bindir} lacks {', '.join(missing)}" if missing else None


def psql_client():
    psql = program("psql")
    if not psql:
        return "psql not found"
    r = run([psql, "--version"])
    return None if r.returncode == 0 else f"psql --version: {r.stdout.strip()[-200:]}"


def libfuzzer():
    """The fuzz targets are built only when clang links -fsanitize=fuzzer (tests/fuzz/CMakeLists.txt);
    without it they would silently vanish from the suite."""
    clang = program("clang++") or program("clang++-14")
    if not clang:
        return "clang++ not found"
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.cpp")
        with open(src, "w") as f:
            f.write('extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n')
        r = run([clang, "-fsanitize=fuzzer,address,undefined", src, "-o", os.path.join(tmp, "probe")])
        return None if r.returncode == 0 else f"clang++ -fsanitize=fuzzer fails: {r.stdout.strip()[-200:]}"


def ip_netns():
    ip = program("ip", "/usr/sbin", "/sbin")
    if not ip:
        return "ip not found"
    r = run([ip, "netns", "list"])
    return None if r.returncode == 0 else f"ip netns: {r.stdout.strip()[-200:]}"


def runuser():
    # pgtmp.py starts PostgreSQL as an unprivileged user with runuser when run as root.
    if os.geteuid() != 0:
        return None
    return None if program("runuser", "/usr/sbin", "/sbin") else "runuser not found"


def debian_pytest():
    # The end-to-end tests run under /usr/bin/python3 -m pytest (tests/CMakeLists.txt);
    # a pytest in some other interpreter on PATH does not count.
    r = run(["/usr/bin/python3", "-c", "import pytest"])
    return None if r.returncode == 0 else f"/usr/bin/python3 cannot import pytest: {r.stdout.strip()[-200:]}"


def debian_python_module(module):
    # Imported by the harness under /usr/bin/python3, as debian_pytest above.
    def check():
        r = run(["/usr/bin/python3", "-c", f"import {module}"])
        return None if r.returncode == 0 else f"/usr/bin/python3 cannot import {module}: {r.stdout.strip()[-200:]}"
    return check


def programs(*names):
    return lambda: next((f"{p} not found" for p in names if not program(p, *SBIN)), None)


SBIN = ("/usr/sbin", "/sbin")
DOVECOT_LIB = "/usr/lib/dovecot"

# (Debian package, what the tests use it for, check returning None or the problem)
CHECKS = [
    ("postgresql", "the throwaway PostgreSQL servers (initdb, postgres, pg_ctl)", postgres_server),
    ("postgresql-client", "psql, used by the harness to set up test data", psql_client),
    ("util-linux", "runuser, to start PostgreSQL as an unprivileged user", runuser),
    ("swaks", "a real SMTP client in the listener tests", has_program("swaks")),
    ("libnet-ssleay-perl", "swaks --tls (STARTTLS) in the listener TLS test", swaks_supports("TLS")),
    ("perl", "swaks --auth (AUTH PLAIN/LOGIN)", swaks_supports("Basic AUTH")),
    ("postfix", "smtp-source, smtp-sink, postconf, postqueue and a throwaway postfix as peers",
     lambda: next((f"{p} not found" for p in ("smtp-source", "smtp-sink", "postfix", "postconf", "postqueue")
                   if not program(p, *SBIN)), None)),
    ("dovecot-core", "dovecot and doveadm, reading Maildirs as a POP3/LMTP peer",
     lambda: next((f"{p} not found" for p in ("dovecot", "doveadm") if not program(p, *SBIN)), None)),
    ("dovecot-pop3d", "Dovecot's POP3 server in the POP3 delivery test",
     lambda: None if os.access(os.path.join(DOVECOT_LIB, "pop3"), os.X_OK) else f"{DOVECOT_LIB}/pop3 not found"),
    ("dovecot-lmtpd", "Dovecot's LMTP server in the LMTP delivery test",
     lambda: None if os.access(os.path.join(DOVECOT_LIB, "lmtp"), os.X_OK) else f"{DOVECOT_LIB}/lmtp not found"),
    ("openssl", "test certificates for STARTTLS and PostgreSQL TLS", has_program("openssl")),
    ("clang", "the libFuzzer targets (clang++)", has_program("clang++")),
    ("libclang-rt-14-dev", "libFuzzer and the sanitizers' runtime for the fuzz targets", libfuzzer),
    ("iproute2", "ip netns for the multi-host deployment test", ip_netns),
    ("python3-pytest", "pytest, which runs the end-to-end tests", debian_pytest),
    # The real milters (tests/harness/milters.py): private instances, never the system services.
    ("rspamd", "rspamd in milter mode for the milter tests and benchmark", programs("rspamd")),
    ("opendkim", "the OpenDKIM milter (signing and verifying)", programs("opendkim")),
    ("opendkim-tools", "opendkim-genkey, the DKIM keys of the milter tests", programs("opendkim-genkey")),
    ("opendmarc", "the OpenDMARC milter", programs("opendmarc")),
    ("unbound", "the DNS server the verifying milters ask", programs("unbound", "unbound-checkconf")),
    ("python3-dkim", "a DKIM verifier other than OpenDKIM (import dkim)", debian_python_module("dkim")),
    ("python3-dnspython", "the harness's DNS queries in the milters' namespace", debian_python_module("dns.resolver")),
]


def main():
    missing = {}
    for package, purpose, check in CHECKS:
        problem = check()
        if problem and package not in missing:
            missing[package] = f"{purpose}: {problem}"
    for package, why in missing.items():
        print(f"preflight: missing Debian package {package} ({why})")
    if missing:
        print(f"preflight: install with: apt-get install {' '.join(missing)}  (or run deploy/install-deps)")
        return 1
    print(f"preflight: all {len(CHECKS)} tools and capabilities present")
    return 0


if __name__ == "__main__":
    sys.exit(main())

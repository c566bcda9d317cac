"""The preflight names the Debian package a missing tool comes from, one line each.

Reproduces the fresh-machine failure of issue 13: swaks installed without its
Recommends (no Net::SSLeay) must be reported as the missing package
libnet-ssleay-perl by the preflight, not as a TLS failure inside a test.
"""
import os
import subprocess
import sys

PREFLIGHT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "harness", "preflight.py")

# What swaks 20201014 prints for --support without Net::SSLeay.
SWAKS_WITHOUT_SSLEAY = """#!/bin/sh
echo '=== AUTH CRAM-MD5 supported'
echo '=== Basic AUTH supported'
echo '*** TLS not available: requires Net::SSLeay'
"""


def preflight(path):
    env = dict(os.environ, PATH=path)
    return subprocess.run([sys.executable, PREFLIGHT], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, env=env)


def test_swaks_without_ssleay_names_libnet_ssleay_perl(tmp_path):
    # Every real tool, but swaks replaced by one that lacks TLS support.
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "swaks").write_text(SWAKS_WITHOUT_SSLEAY)
    (fake / "swaks").chmod(0o755)
    r = preflight(str(fake) + os.pathsep + os.environ.get("PATH", ""))
    lines = r.stdout.splitlines()
    assert r.returncode != 0, r.stdout
    assert any(l.startswith("preflight: missing Debian package libnet-ssleay-perl") and "Net::SSLeay" in l
               for l in lines), r.stdout
    assert not any("package swaks " in l for l in lines), r.stdout


def test_empty_path_names_each_package_once(tmp_path):
    r = preflight(str(tmp_path))
    named = [l.split()[4] for l in r.stdout.splitlines() if l.startswith("preflight: missing Debian package")]
    assert r.returncode != 0
    for package in ("swaks", "openssl", "clang", "postgresql-client", "rspamd"):
        assert package in named, (package, r.stdout)
    assert len(named) == len(set(named)), r.stdout


def test_this_machine_has_everything():
    # What ctest's preflight fixture runs.
    r = preflight(os.environ.get("PATH", ""))
    assert r.returncode == 0 and "all" in r.stdout, r.stdout

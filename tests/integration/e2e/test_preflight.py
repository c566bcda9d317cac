#!/usr/bin/env python3
"""The preflight names the Debian package a missing tool comes from, one line each.

Reproduces the fresh-machine failure of issue 13: swaks installed without its
Recommends (no Net::SSLeay) must be reported as the missing package
libnet-ssleay-perl by the preflight, not as a TLS failure inside a test.
"""
import os
import shutil
import subprocess
import sys
import tempfile

# The checks in these tests are plain asserts, which python3 -O (or PYTHONOPTIMIZE)
# strips: refuse to run rather than pass without checking anything.
if not __debug__:
    sys.exit("run this test without -O or PYTHONOPTIMIZE: their checks are asserts")

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


def main():
    with tempfile.TemporaryDirectory() as tmp:
        # Every real tool, but swaks replaced by one that lacks TLS support.
        fake = os.path.join(tmp, "bin")
        os.mkdir(fake)
        with open(os.path.join(fake, "swaks"), "w") as f:
            f.write(SWAKS_WITHOUT_SSLEAY)
        os.chmod(os.path.join(fake, "swaks"), 0o755)
        r = preflight(fake + os.pathsep + os.environ.get("PATH", ""))
        lines = r.stdout.splitlines()
        assert r.returncode != 0, r.stdout
        assert any(l.startswith("preflight: missing Debian package libnet-ssleay-perl") and "Net::SSLeay" in l
                   for l in lines), r.stdout
        assert not any("package swaks " in l for l in lines), r.stdout

        # No tools at all on PATH: each package is named once, on its own line.
        empty = os.path.join(tmp, "empty")
        os.mkdir(empty)
        r = preflight(empty)
        named = [l.split()[4] for l in r.stdout.splitlines() if l.startswith("preflight: missing Debian package")]
        assert r.returncode != 0
        for package in ("swaks", "openssl", "clang", "postgresql-client"):
            assert package in named, (package, r.stdout)
        assert len(named) == len(set(named)), r.stdout

        # The machine running the suite has everything (this is what ctest's fixture runs).
        r = preflight(os.environ.get("PATH", ""))
        assert r.returncode == 0 and "all" in r.stdout, r.stdout
    print("preflight: ok")


if __name__ == "__main__":
    if not shutil.which("python3"):
        sys.exit("python3 not on PATH")
    main()

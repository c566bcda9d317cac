#!/usr/bin/env python3
"""The start-up every daemon shares (common/daemon.h), run against the real binaries.

- A bad value in a daemon's own section, in [database] or (for the daemons
  that claim queued work) in [queue] exits 2 before anything is opened, and
  the message names the file, line, section and key.
- An unknown key is refused the same way; the listener does not read [queue].
- A missing file, an unknown flag and a bad --log-level exit 2; --help exits 0.
- A good file passes --check-config with 0.
No database is needed: --check-config stops before one is opened.
"""
import os
import subprocess
import sys
import tempfile

if not __debug__:
    sys.exit("run this test without -O or PYTHONOPTIMIZE: their checks are asserts")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "harness"))
from pipeline import bin_dir  # noqa: E402

DAEMONS = {"wsmtp": ("listener/wsmtp", "listener"), "wroute": ("router/wroute", "router"),
           "wdeliver": ("deliver/wdeliver", "deliver"), "wreaper": ("reaper/wreaper", "reaper")}
# A value out of range in each daemon's own section.
BAD_OWN = {"wsmtp": ("max_recipients", "0"), "wroute": ("batch_size", "0"), "wdeliver": ("batch_size", "0"),
           "wreaper": ("interval", "0")}
QUEUE_READERS = ("wroute", "wdeliver", "wreaper")
GOOD = "[listener]\nhostname = mail.example.org\n[deliver]\nhostname = mail.example.org\n"


def run(daemon, *args):
    path = os.path.join(bin_dir(), DAEMONS[daemon][0])
    return subprocess.run([path, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)


def check_config(daemon, text):
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        f.write(text)
    try:
        return f.name, run(daemon, "--check-config", "-c", f.name)
    finally:
        os.unlink(f.name)


def assert_refused(daemon, result, where, key):
    name, r = result
    assert r.returncode == 2, (daemon, r.returncode, r.stderr)
    first = r.stderr.splitlines()[0] if r.stderr else ""
    assert first.startswith(f"{daemon}: {name}:{where}"), (daemon, r.stderr)
    assert key in first, (daemon, key, r.stderr)


def test_good_file_passes_check_config():
    for daemon in DAEMONS:
        _, r = check_config(daemon, GOOD)
        assert r.returncode == 0, (daemon, r.returncode, r.stderr)


def test_bad_value_in_own_section_exits_2_naming_the_key():
    for daemon, (key, value) in BAD_OWN.items():
        section = DAEMONS[daemon][1]
        result = check_config(daemon, GOOD + f"[{section}]\n{key} = {value}\n")
        # GOOD has 4 lines, then the section header: the key is on line 6.
        assert_refused(daemon, result, "6:", f"[{section}] {key}")


def test_unknown_key_in_own_section_exits_2_naming_it():
    for daemon in DAEMONS:
        section = DAEMONS[daemon][1]
        assert_refused(daemon, check_config(daemon, GOOD + f"[{section}]\nno_such_key = 1\n"), "6:",
                       "no_such_key")


def test_database_section_is_checked_by_every_daemon():
    for daemon in DAEMONS:
        result = check_config(daemon, GOOD + "[database]\nconninfo = dbname=x password=secret\n")
        assert_refused(daemon, result, "6:", "[database] conninfo")


def test_queue_section_is_checked_by_the_daemons_that_claim_work():
    bad_queue = GOOD + "[queue]\nmax_expired_claims = 0\n"
    for daemon in QUEUE_READERS:
        assert_refused(daemon, check_config(daemon, bad_queue), "6:", "[queue] max_expired_claims")
    # The listener claims nothing: [queue] is not its business.
    _, r = check_config("wsmtp", bad_queue)
    assert r.returncode == 0, r.stderr


def test_missing_file_bad_flag_and_help():
    for daemon in DAEMONS:
        r = run(daemon, "--check-config", "-c", "/nonexistent/wsmtp.conf")
        assert r.returncode == 2 and "/nonexistent/wsmtp.conf" in r.stderr, (daemon, r.returncode, r.stderr)
        r = run(daemon, "--no-such-flag")
        assert r.returncode == 2, (daemon, r.returncode, r.stderr)
        r = run(daemon, "--log-level", "loud", "--check-config")
        assert r.returncode == 2, (daemon, r.returncode, r.stderr)
        r = run(daemon, "--help")
        assert r.returncode == 0 and "--check-config" in r.stdout, (daemon, r.returncode, r.stdout)
    assert "--once" in run("wreaper", "--help").stdout


def main():
    tests = [v for k, v in sorted(globals().items()) if k.startswith("test_") and callable(v)]
    for test in tests:
        test()
        print(f"ok   {test.__name__}", flush=True)
    print(f"daemon start: {len(tests)} behaviours checked for {', '.join(DAEMONS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

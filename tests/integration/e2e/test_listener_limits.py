#!/usr/bin/env python3
"""Client limits and their exceptions (issue 13). With the listener's default
limits, the README's smtp-source burst from loopback (20 sessions, 2000
messages, one connection per message: far past 60 connections a minute) is
accepted whole, because loopback is in the default limit_exceptions; with
limit_exceptions naming another network, loopback is limited again (421 for
the 21st concurrent connection and past 60 a minute, and the session ends
after max_errors). Relaying from loopback stays refused either way.
Bounded: 2000 small messages and about a hundred connections.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "harness"))
from pipeline import Pipeline, wait_until  # noqa: E402
from listener_harness import RawSmtp, sql  # noqa: E402

FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print(f"FAIL: {what}")


def greeting(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    data = b""
    while b"\r\n" not in data:
        chunk = s.recv(1000)
        if not chunk:
            break
        data += chunk
    return s, data.decode(errors="replace")


def test_smtp_source_burst(p):
    smtp_source = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    # The exact command from the issue, against this pipeline's port.
    r = subprocess.run([smtp_source, "-s", "20", "-m", "2000", "-l", "4096", "-f", "a@b.test", "-t",
                        f"demo@{p.domain}", f"127.0.0.1:{p.port}"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    check(r.returncode == 0, f"smtp-source succeeded: {r.returncode} {r.stdout[-500:]}")
    check("421" not in r.stdout, f"no 421 for smtp-source: {r.stdout[-500:]}")
    n = int(sql(p, "SELECT count(*) FROM messages WHERE state = 1 AND envelope_from = 'a@b.test'")[0][0])
    check(n == 2000, f"all 2000 messages accepted ({n})")
    check("refused" not in p.log("wsmtp"), "nothing refused in the log")


def test_errors_exempt(p):
    c = RawSmtp(p.port)
    c.reply()
    c.cmd("EHLO x")
    codes = [c.cmd("FROB")[0] for _ in range(15)]
    check(codes == [500] * 15, f"an exempt client is not cut off after max_errors: {codes}")
    check(c.cmd("NOOP")[0] == 250, "still served after 15 errors")
    # Exempt from limits is not trusted to relay.
    c.cmd("MAIL FROM:<a@b.test>")
    check(c.cmd("RCPT TO:<someone@remote.example>")[0] == 554, "loopback still may not relay")
    c.close()


def reload_listener(p, extra):
    text = open(p.config).read().replace("[listener]\n", f"[listener]\n{extra}\n", 1)
    with open(p.config, "w") as f:
        f.write(text)
    p.procs["wsmtp"][-1].send_signal(signal.SIGHUP)
    wait_until(lambda: p.log("wsmtp").count("configuration reloaded") >= 1, 20, what="wsmtp reload")


def test_limits_apply_when_not_exempt(p):
    held = []
    for _ in range(20):
        s, g = greeting(p.port)
        check(g.startswith("220"), f"connection within max_connections_per_client: {g!r}")
        held.append(s)
    s, g = greeting(p.port)
    check(g.startswith("421 4.7.0"), f"21st concurrent connection refused: {g!r}")
    s.close()
    for s in held:
        s.close()

    c = RawSmtp(p.port)
    c.reply()
    c.cmd("EHLO x")
    codes = [c.cmd("FROB")[0] for _ in range(10)]
    code, lines = c.reply()  # after the 10th error's 500
    check(code == 421 and c.closed(), f"max_errors applies to a non-exempt client: {codes} {lines}")
    c.close()

    # 60 a minute (the 22 connections above count too).
    refused = 0
    for _ in range(60):
        s, g = greeting(p.port)
        refused += g.startswith("421")
        s.close()
    check(refused > 0, "connection rate limit applies to a non-exempt client")


def main():
    with Pipeline(domain="demo.test") as p:
        p.add_domain()
        p.add_mailbox("demo")
        p.start("wsmtp")
        for test in (test_smtp_source_burst, test_errors_exempt):
            print(f"--- {test.__name__}")
            test(p)
        print("--- test_limits_apply_when_not_exempt")
        reload_listener(p, "limit_exceptions = 192.0.2.0/24")
        test_limits_apply_when_not_exempt(p)
        if FAILURES:
            raise AssertionError(f"{len(FAILURES)} failure(s): {FAILURES}")
        print("listener limits: all checks passed")


if __name__ == "__main__":
    main()

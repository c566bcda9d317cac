"""Client limits and their exceptions (issue 13). With the listener's default
limits, the README's smtp-source burst from loopback (20 sessions, 2000
messages, one connection per message: far past 60 connections a minute) is
accepted whole, because loopback is in the default limit_exceptions; with
limit_exceptions naming another network, loopback is limited again (421 for
the 21st concurrent connection and past 60 a minute, and the session ends
after max_errors). Relaying from loopback stays refused either way.
Bounded: 2000 small messages and about a hundred connections.
"""
import shutil
import signal
import socket
import subprocess

import pytest
from listener_harness import RawSmtp, sql
from pipeline import Pipeline, wait_until

# The functions below run in file order: the exempt checks run on the default
# limits, then the listener is reloaded with limit_exceptions naming another network.


def greeting(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    data = b""
    while b"\r\n" not in data:
        chunk = s.recv(1000)
        if not chunk:
            break
        data += chunk
    return s, data.decode(errors="replace")


@pytest.fixture(scope="module")
def p():
    with Pipeline(domain="demo.test") as p:
        p.add_domain()
        p.add_mailbox("demo")
        p.start("wsmtp")
        yield p


def test_smtp_source_burst_from_loopback_is_accepted_whole(p):
    smtp_source = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    # The exact command from the issue, against this pipeline's port.
    r = subprocess.run([smtp_source, "-s", "20", "-m", "2000", "-l", "4096", "-f", "a@b.test", "-t",
                        f"demo@{p.domain}", f"127.0.0.1:{p.port}"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert r.returncode == 0, f"smtp-source succeeded: {r.returncode} {r.stdout[-500:]}"
    assert "421" not in r.stdout, f"no 421 for smtp-source: {r.stdout[-500:]}"
    n = int(sql(p, "SELECT count(*) FROM messages WHERE state = 1 AND envelope_from = 'a@b.test'")[0][0])
    assert n == 2000, f"all 2000 messages accepted ({n})"
    assert "refused" not in p.log("wsmtp"), "nothing refused in the log"


def test_exempt_client_is_not_cut_off_after_max_errors(p):
    c = RawSmtp(p.port)
    c.reply()
    c.cmd("EHLO x")
    codes = [c.cmd("FROB")[0] for _ in range(15)]
    assert codes == [500] * 15, f"an exempt client is not cut off after max_errors: {codes}"
    assert c.cmd("NOOP")[0] == 250, "still served after 15 errors"
    # Exempt from limits is not trusted to relay.
    c.cmd("MAIL FROM:<a@b.test>")
    assert c.cmd("RCPT TO:<someone@remote.example>")[0] == 554, "loopback still may not relay"
    c.close()


@pytest.fixture(scope="module")
def not_exempt(p):
    """The listener reloaded with limit_exceptions naming another network."""
    text = open(p.config).read().replace("[listener]\n", "[listener]\nlimit_exceptions = 192.0.2.0/24\n", 1)
    with open(p.config, "w") as f:
        f.write(text)
    p.procs["wsmtp"][-1].send_signal(signal.SIGHUP)
    wait_until(lambda: p.log("wsmtp").count("configuration reloaded") >= 1, 20, what="wsmtp reload")
    return p


def test_21st_concurrent_connection_is_refused(not_exempt):
    p = not_exempt
    held = []
    for _ in range(20):
        s, g = greeting(p.port)
        assert g.startswith("220"), f"connection within max_connections_per_client: {g!r}"
        held.append(s)
    s, g = greeting(p.port)
    assert g.startswith("421 4.7.0"), f"21st concurrent connection refused: {g!r}"
    s.close()
    for s in held:
        s.close()


def test_max_errors_applies_to_a_non_exempt_client(not_exempt):
    c = RawSmtp(not_exempt.port)
    c.reply()
    c.cmd("EHLO x")
    codes = [c.cmd("FROB")[0] for _ in range(10)]
    code, lines = c.reply()  # after the 10th error's 500
    assert code == 421 and c.closed(), f"max_errors applies to a non-exempt client: {codes} {lines}"
    c.close()


def test_connection_rate_limit_applies_to_a_non_exempt_client(not_exempt):
    # 60 a minute (the 22 connections of the tests above count too).
    refused = 0
    for _ in range(60):
        s, g = greeting(not_exempt.port)
        refused += g.startswith("421")
        s.close()
    assert refused > 0, "connection rate limit applies to a non-exempt client"

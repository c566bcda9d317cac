"""Deadlines a trickling client cannot push back (issue 13), with short
settings: command_deadline 2s, min_data_rate 1000 bytes/s after a data_timeout
of 10s, max_session_time 6s. Twenty clients that each send one byte a second
are all cut off with 421 4.4.2 within a few seconds while a client at a normal
pace is served; a DATA trickled byte by byte is cut off and nothing is stored;
a session past its lifetime is closed at its next command, but a message in
progress at a fair rate is still accepted first; a TLS handshake trickled after
STARTTLS is hung up on. Bounded: about 20 seconds.
"""
import smtplib
import socket
import threading
import time

import pytest
from listener_harness import RawSmtp, make_cert, sql
from pipeline import Pipeline

# The scenarios run at the same time, as they did before, so that the tricklers
# hold their connections while the others are served, and the whole file takes
# about as long as its slowest scenario. Each test function reports its
# scenario's outcome: the exception it raised, if any.


def trickle(port, payload, results, index, interval=1.0, limit=20.0):
    """Sends payload one byte per interval; records (seconds, reply) when the
    server answers or closes."""
    start = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    buf = b""
    while b"\r\n" not in buf:
        buf += s.recv(1000)
    buf = b""
    s.settimeout(interval)
    i = 0
    while time.monotonic() - start < limit:
        try:
            s.send(payload[i % len(payload):i % len(payload) + 1])
        except OSError:
            break
        i += 1
        try:
            chunk = s.recv(1000)
            buf += chunk
            if not chunk or b"\r\n" in buf:
                break
        except socket.timeout:
            continue
        except OSError:
            break
    results[index] = (time.monotonic() - start, buf.decode(errors="replace"))
    s.close()


def normal_client(p, results):
    """A whole transaction and a few commands at a human pace: about 3 s in all
    (longer than command_deadline), every line sent at once."""
    try:
        with smtplib.SMTP("127.0.0.1", p.port, timeout=20) as s:
            s.ehlo("normal.example")
            s.sendmail("normal@client.example", [f"alice@{p.domain}"], b"Subject: normal\r\n\r\nfine\r\n")
            for _ in range(5):
                time.sleep(0.5)
                code, _ = s.noop()
                if code != 250:
                    raise AssertionError(f"NOOP {code}")
        results["normal"] = "ok"
    except Exception as e:  # noqa: BLE001 - reported as a failure
        results["normal"] = repr(e)


def tricklers(p):
    results = {}
    threads = [threading.Thread(target=trickle, args=(p.port, b"EHLO trickle.example\r\n", results, i))
               for i in range(20)]
    threads.append(threading.Thread(target=normal_client, args=(p, results)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.get("normal") == "ok", f"the normal client was served: {results.get('normal')}"
    for i in range(20):
        elapsed, reply = results.get(i, (None, ""))
        assert reply.startswith("421 4.4.2") and "command line not received in time" in reply, \
            f"trickler {i} got 421 4.4.2: {reply!r}"
        assert elapsed is not None and elapsed < 8, f"trickler {i} cut off within 8 s ({elapsed})"
    assert p.log("wsmtp").count("command line not complete within 2s") >= 20, "each cut-off is logged"


def data_trickle(p):
    c = RawSmtp(p.port)
    c.reply()
    c.cmd("EHLO x")
    c.cmd("MAIL FROM:<slow@client.example>")
    c.cmd(f"RCPT TO:<alice@{p.domain}>")
    assert c.cmd("DATA")[0] == 354, "DATA 354"
    start = time.monotonic()
    reply = None
    c.sock.settimeout(0.5)
    while time.monotonic() - start < 25:
        c.send(b"x")
        try:
            chunk = c.sock.recv(1000)
        except socket.timeout:
            continue
        reply = chunk.decode(errors="replace")
        break
    elapsed = time.monotonic() - start
    assert reply is not None and reply.startswith("421 4.4.2") and "too slowly" in reply, \
        f"trickled DATA cut off with 421 4.4.2: {reply!r}"
    # data_timeout 10 s plus a few dozen bytes at 1000 bytes/s.
    assert 9 < elapsed < 15, f"cut off after the base allowance ({elapsed:.1f} s)"
    c.close()
    rows = sql(p, "SELECT count(*) FROM messages WHERE envelope_from = 'slow@client.example' AND state >= 1")
    assert rows[0][0] == "0", "nothing stored for the trickled message"
    assert "message data slower than 1000 bytes/s" in p.log("wsmtp"), "the data cut-off is logged"


def lifetime_endless_session(p):
    # Idle-free but endless: NOOP every second. Past max_session_time the
    # 421 comes unprompted (RFC 5321 §3.8), so the client looks before sending.
    c = RawSmtp(p.port)
    start = time.monotonic()
    c.reply()
    lines = []
    while time.monotonic() - start < 20:
        c.sock.settimeout(1)
        try:
            c.buf += c.sock.recv(1000)
        except socket.timeout:
            pass
        c.sock.settimeout(20)
        if c.buf:
            code, lines = c.reply()
            break
        code, lines = c.cmd("NOOP")
        assert code == 250, f"NOOP before the lifetime: {lines}"
    elapsed = time.monotonic() - start
    assert lines and lines[-1].startswith("421 4.4.2") and "session time limit" in lines[-1], \
        f"session ended with 421 4.4.2: {lines}"
    assert 5.5 < elapsed < 10, f"after max_session_time ({elapsed:.1f} s)"
    c.close()


def lifetime_message_in_progress(p):
    # A message that is under way when the lifetime passes, at a fair rate
    # (2000 bytes/s), is accepted; then the 421 follows at once.
    c = RawSmtp(p.port)
    start = time.monotonic()
    c.reply()
    c.cmd("EHLO x")
    c.cmd("MAIL FROM:<steady@client.example>")
    c.cmd(f"RCPT TO:<alice@{p.domain}>")
    time.sleep(1)
    c.cmd("DATA")
    c.send("Subject: steady\r\n\r\n")
    while time.monotonic() - start < 7:
        c.send(("y" * 498 + "\r\n"))
        time.sleep(0.25)
    code, lines = c.cmd(".")
    assert code == 250, f"the message in progress past the lifetime is accepted: {lines}"
    code, lines = c.reply()
    assert code == 421 and "session time limit" in lines[-1], f"then the session ends: {lines}"
    c.close()


def tls_handshake_trickle(p):
    """After STARTTLS the handshake is part of the next command's deadline: a
    client that trickles a ClientHello is disconnected (no plaintext 421 can be
    sent inside a handshake)."""
    c = RawSmtp(p.port)
    start = time.monotonic()
    c.reply()
    c.cmd("EHLO x")
    assert c.cmd("STARTTLS")[0] == 220, "STARTTLS 220"
    hello = bytes.fromhex("16030100f4010000f00303") + bytes(32)  # the start of a ClientHello
    closed = False
    c.sock.settimeout(1)
    for b in hello:
        try:
            c.sock.send(bytes([b]))
            if c.sock.recv(1000) == b"":
                closed = True
                break
        except socket.timeout:
            continue
        except OSError:
            closed = True
            break
    elapsed = time.monotonic() - start
    assert closed and elapsed < 8, f"trickled TLS handshake cut off ({closed}, {elapsed:.1f} s)"
    assert "TLS handshake not complete within 2s" in p.log("wsmtp"), "the handshake cut-off is logged"
    c.close()


# Threads that run at once; the scenarios within one run one after the other.
SCENARIOS = [[tricklers], [data_trickle], [lifetime_endless_session, lifetime_message_in_progress],
             [tls_handshake_trickle]]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """Runs every scenario against one listener; returns name -> exception or None."""
    cert, key = make_cert(str(tmp_path_factory.mktemp("wsmtp-deadlines-")))
    extra = ("command_deadline = 2s\nmin_data_rate = 1000\ndata_timeout = 10s\nmax_session_time = 6s\n"
             f"tls_cert_file = {cert}\ntls_key_file = {key}\n")
    with Pipeline(listener_extra=extra) as p:
        p.add_domain()
        p.add_mailbox("alice")
        p.start("wsmtp")
        results = {}

        def run(group):
            for scenario in group:
                try:
                    scenario(p)
                    results[scenario.__name__] = None
                except Exception as e:  # noqa: BLE001 - raised again by the scenario's test
                    results[scenario.__name__] = e

        threads = [threading.Thread(target=run, args=(group,)) for group in SCENARIOS]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        yield results


def outcome(outcomes, scenario):
    if outcomes[scenario.__name__] is not None:
        raise outcomes[scenario.__name__]


def test_tricklers_are_cut_off_while_a_normal_client_is_served(outcomes):
    outcome(outcomes, tricklers)


def test_trickled_data_is_cut_off_and_nothing_is_stored(outcomes):
    outcome(outcomes, data_trickle)


def test_a_session_past_its_lifetime_is_closed(outcomes):
    outcome(outcomes, lifetime_endless_session)


def test_a_message_in_progress_past_the_lifetime_is_accepted_first(outcomes):
    outcome(outcomes, lifetime_message_in_progress)


def test_a_trickled_tls_handshake_is_hung_up_on(outcomes):
    outcome(outcomes, tls_handshake_trickle)

"""Memory bounds of wsmtp: 5,000 concurrent idle connections are served (a new
client still gets through) and the resident memory per idle connection is
measured; a 100 MiB message is streamed to PostgreSQL while the daemon's
resident memory grows by less than 16 MiB. Prints the figures for the report.
"""
import socket
import threading
import time

import pytest
from listener_harness import RawSmtp, sql
from pipeline import Pipeline

IDLE = 5000
BIG = 100 * 1024 * 1024


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def send_one(p, body_lines=3):
    c = RawSmtp(p.port)
    c.reply()
    c.cmd("EHLO warm.example")
    c.send(f"MAIL FROM:<s@client.example>\r\nRCPT TO:<alice@{p.domain}>\r\nDATA\r\n")
    assert [r[0] for r in c.replies(3)] == [250, 250, 354]
    c.send("Subject: warm\r\n\r\n" + "w\r\n" * body_lines + ".\r\n")
    assert c.reply()[0] == 250
    c.close()


def idle_connections(p, pid):
    send_one(p)
    before = rss_kib(pid)
    socks = []
    for i in range(IDLE):
        s = socket.create_connection(("127.0.0.1", p.port), timeout=30)
        socks.append(s)
    # Every one of them is a live session: each gets its greeting.
    for s in socks:
        data = b""
        while not data.endswith(b"\r\n"):
            data += s.recv(512)
        assert data.startswith(b"220 "), data
    time.sleep(1)
    after = rss_kib(pid)
    send_one(p)  # the server still serves while they sit there
    per_conn = (after - before) * 1024 / IDLE
    print(f"idle connections: {IDLE}, RSS {before} KiB -> {after} KiB, {per_conn:.0f} bytes per idle connection")
    for s in socks:
        s.close()
    return per_conn


def big_message(p, pid):
    send_one(p, body_lines=30000)  # a streamed message first, so every buffer has been used once
    time.sleep(0.5)
    base = rss_kib(pid)
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_kib(pid))
            time.sleep(0.02)

    t = threading.Thread(target=sample)
    t.start()
    c = RawSmtp(p.port, timeout=120)
    c.reply()
    c.cmd("EHLO big.example")
    c.send(f"MAIL FROM:<s@client.example> SIZE={BIG + 100000}\r\nRCPT TO:<alice@{p.domain}>\r\nDATA\r\n")
    assert [r[0] for r in c.replies(3)] == [250, 250, 354]
    line = b"y" * 998 + b"\r\n"
    block = b"Subject: big\r\n\r\n" + line * 1023
    sent = len(block)
    c.send(block)
    block = line * 1024
    start = time.time()
    while sent < BIG:
        c.send(block)
        sent += len(block)
    c.send(b".\r\n")
    code, lines = c.reply()
    elapsed = time.time() - start
    done.set()
    t.join()
    c.close()
    assert code == 250, lines
    # By the queue id of the 250: ids come from reserved blocks, so the newest
    # message need not have the highest id.
    queue_id = int(lines[-1].rsplit("queued as ", 1)[1].split()[0])
    size = int(sql(p, f"SELECT size FROM messages WHERE id = {queue_id} AND state >= 1")[0][0])
    growth = (peak[0] - base) / 1024
    print(f"100 MiB message: {sent} bytes in {elapsed:.1f}s ({sent / elapsed / 1e6:.1f} MB/s), stored size {size}, "
          f"RSS {base} KiB -> peak {peak[0]} KiB, growth {growth:.1f} MiB")
    assert size >= BIG
    return growth


@pytest.fixture(scope="module")
def env():
    extra = ("max_connections = 6000\nmax_connections_per_client = 6000\nmax_connection_rate = 0\n"
             "max_message_size = 200M\n")
    with Pipeline(listener_extra=extra) as p:
        p.add_domain()
        p.add_mailbox("alice")
        p.start("wsmtp")
        yield p, p.procs["wsmtp"][-1].pid


def test_idle_connections_are_served_in_under_16_kib_each(env):
    per_conn = idle_connections(*env)
    assert per_conn < 16 * 1024, f"{per_conn:.0f} bytes per idle connection"


def test_100_mib_message_streams_with_under_16_mib_growth(env):
    growth = big_message(*env)
    assert growth < 16, f"RSS grew {growth:.1f} MiB for a 100 MiB message"

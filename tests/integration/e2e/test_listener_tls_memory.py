"""Output memory bound over TLS (issue 15 item 5): a client that pipelines
NOOPs inside STARTTLS and never reads its replies must not grow wsmtp by 16 MiB.
1,500,000 of them (9 MB of ciphertext): the issue's 100,000 earn only ~1.4 MB of
replies, under the bound even without it; these grew an unbounded listener by ~50 MiB.
The TLS filter hands its output on to the socket bufferevent under it, so a cap
checked on the filter alone never triggers. The client here drives TLS through
memory BIOs over a raw socket (one thread, no blocking writes), measures the
listener's resident memory while it refuses to read, checks that another
client is served meanwhile, then reads every reply and ends with QUIT.
"""
import select
import socket
import ssl
import time

import pytest
from listener_harness import RawSmtp, make_cert
from pipeline import Pipeline

# The functions below run in file order on one flooding client: another client
# is served while it does not read, then it reads every reply, then it QUITs.

NOOPS = 1_500_000
MAX_GROWTH_MIB = 16


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class MemoryTlsClient:
    """SMTP over a raw socket with TLS done in ssl.MemoryBIOs, so the test
    decides exactly when bytes are sent and when they are read."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.plain = b""
        self.pending = b""  # ciphertext not yet accepted by the kernel

    def line(self):
        while b"\r\n" not in self.plain:
            chunk = self.sock.recv(4096)
            assert chunk, f"closed during the plaintext dialogue: {self.plain!r}"
            self.plain += chunk
        line, self.plain = self.plain.split(b"\r\n", 1)
        return line

    def reply_code(self):
        while True:
            line = self.line()
            if line[3:4] != b"-":
                return int(line[:3])

    def starttls(self):
        assert self.reply_code() == 220
        self.sock.sendall(b"EHLO tls-memory.example\r\n")
        assert self.reply_code() == 250
        self.sock.sendall(b"STARTTLS\r\n")
        assert self.reply_code() == 220
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # the test certificate is self-signed
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.incoming, self.outgoing, server_side=False)
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.sock.sendall(self.outgoing.read())
                data = self.sock.recv(65536)
                assert data, "closed during the TLS handshake"
                self.incoming.write(data)
        self.sock.sendall(self.outgoing.read())
        self.sock.setblocking(False)
        self.replies = bytearray()  # one TLS record per reply: appending must not copy it all

    def queue(self, data):
        self.tls.write(data)
        self.pending += self.outgoing.read()

    def push(self, timeout):
        """Sends queued ciphertext until it is all sent or the server has taken
        nothing for `timeout` seconds; returns the bytes sent."""
        sent = 0
        while self.pending:
            _, writable, _ = select.select([], [self.sock], [], timeout)
            if not writable:
                break
            try:
                n = self.sock.send(self.pending[:262144])
            except BlockingIOError:
                continue
            self.pending = self.pending[n:]
            sent += n
        return sent

    def pump(self, timeout):
        """One round: send what the kernel takes, read and decrypt what came."""
        readable, writable, _ = select.select([self.sock], [self.sock] if self.pending else [], [], timeout)
        if writable:
            try:
                n = self.sock.send(self.pending[:262144])
                self.pending = self.pending[n:]
            except BlockingIOError:
                pass
        if readable:
            data = self.sock.recv(262144)
            if not data:
                return False
            self.incoming.write(data)
            while True:
                try:
                    self.replies += self.tls.read(262144)
                except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                    break
        return True

    def take_lines(self):
        """The complete reply lines received so far, removed from the buffer."""
        end = self.replies.rfind(b"\r\n")
        if end < 0:
            return []
        lines = bytes(self.replies[:end]).split(b"\r\n")
        del self.replies[:end + 2]
        return lines


def send_one(p):
    c = RawSmtp(p.port)
    assert c.reply()[0] == 220
    c.cmd("EHLO other.example")
    c.send(f"MAIL FROM:<s@client.example>\r\nRCPT TO:<alice@{p.domain}>\r\nDATA\r\n")
    assert [r[0] for r in c.replies(3)] == [250, 250, 354]
    c.send("Subject: meanwhile\r\n\r\nserved while another client does not read\r\n.\r\n")
    assert c.reply()[0] == 250
    c.cmd("QUIT")
    c.close()


@pytest.fixture(scope="module")
def p(tmp_path_factory):
    cert, key = make_cert(str(tmp_path_factory.mktemp("wsmtp-tlsmem-")))
    # The flood is one client at full speed: no rate or error limit may end it first.
    extra = f"tls_cert_file = {cert}\ntls_key_file = {key}\ncommand_timeout = 120s\ncommand_deadline = 120s\n"
    with Pipeline(listener_extra=extra) as p:
        p.add_domain()
        p.add_mailbox("alice")
        p.start("wsmtp")
        yield p


@pytest.fixture(scope="module")
def flood(p):
    """The client that pipelined every NOOP and has not read a reply yet, with the
    listener's resident memory measured while it refuses to read."""
    pid = p.procs["wsmtp"][-1].pid
    send_one(p)  # every buffer and the store path used once before the baseline

    c = MemoryTlsClient(p.port)
    c.starttls()
    c.queue(b"EHLO tls-memory.example\r\n")
    c.queue(b"NOOP\r\n" * NOOPS)
    time.sleep(0.5)
    base = rss_kib(pid)
    # The client never reads: the server can only send until its caps and
    # the kernel's socket buffers are full, and must then stop reading.
    sent = c.push(timeout=3)
    peak = base
    for _ in range(20):
        time.sleep(0.1)
        peak = max(peak, rss_kib(pid))
    c.growth = (peak - base) / 1024
    print(f"{NOOPS} pipelined NOOPs over TLS, not read: {sent} of {sent + len(c.pending)} ciphertext bytes "
          f"taken; RSS {base} KiB -> {peak} KiB, growth {c.growth:.1f} MiB")
    yield c
    c.sock.close()


def test_listener_memory_stays_bounded_for_a_client_that_does_not_read(flood):
    assert flood.growth < MAX_GROWTH_MIB, f"RSS grew {flood.growth:.1f} MiB for a client that does not read"


def test_another_client_is_served_meanwhile(p, flood):
    send_one(p)  # the listener serves others while that client sits there


def test_every_noop_is_answered_in_order(flood):
    c = flood
    # Reading and QUIT (the next function) share one 300 s deadline.
    c.deadline = time.time() + 300
    ehlo_done, noops = False, 0
    while noops < NOOPS and time.time() < c.deadline:
        assert c.pump(1), f"closed after {noops} NOOP replies"
        for line in c.take_lines():
            if not ehlo_done:
                ehlo_done = line.startswith(b"250 ")
                continue
            assert line.startswith(b"250 "), f"reply {noops + 1} to NOOP: {line!r}"
            noops += 1
    assert noops == NOOPS, f"{noops} of {NOOPS} NOOPs answered"


def test_quit_ends_the_session(flood):
    c = flood
    c.queue(b"QUIT\r\n")
    closed = False
    while time.time() < c.deadline and not closed:
        closed = not c.pump(1)
    assert closed, "the session did not end after QUIT"
    assert bytes(c.replies).startswith(b"221 "), bytes(c.replies[:200])

"""Per-destination concurrency (issue 16): a relay pool whose only relay
accepts TCP and never says a word holds at most relay_concurrency workers,
while mail for Maildirs and for a second pool with a working relay is
delivered promptly by the others.

The stalling relay is a scripted fake (a real peer does not misbehave like
this): it accepts, counts the connections open at once, and sends nothing.
Its pool's client timeout (relay_command_timeout, which covers the greeting)
is 120 s, far beyond the 20 s the rest of the mail gets. All mail is routed
with the deliverer stopped and then released at once, so every worker's
first claim could reach the stalled pool.
"""
import socket
import threading
import time

import pytest
from deliver_harness import Pipeline, queue_counts, set_section, sql, wait_until
from deliver_relays import SmtpSink

PER_KIND = 15
LIMIT = 2
WORKERS = 4
STALL_TIMEOUT = 120
PROMPT = 20


class StallingRelay:
    """Accepts connections and never answers; counts how many are open at once."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.open = 0
        self.most = 0
        self.total = 0
        self.conns = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.open += 1
                self.total += 1
                self.most = max(self.most, self.open)
                self.conns.append(conn)
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn):
        # Reads (and ignores) until the client gives up and closes.
        try:
            while conn.recv(4096):
                pass
        except OSError:
            pass
        with self.lock:
            self.open -= 1

    def close(self):
        self.sock.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                c.close()


def message(token):
    return f"Subject: {token}\r\nMessage-ID: <{token}@t>\r\n\r\nbody {token}\r\n"


@pytest.fixture(scope="module")
def env():
    stall = StallingRelay()
    with Pipeline(lease_time="30s", listener_extra="trusted_networks = 127.0.0.1/32\n") as p:
        set_section(p, "deliver", transports="maildir, relay", retry_base="1s", batch_size="5",
                    min_workers=str(WORKERS), max_workers=str(WORKERS), relay_concurrency=str(LIMIT),
                    relay_connect_timeout="5s", relay_command_timeout=f"{STALL_TIMEOUT}s")
        good = SmtpSink(p.root, "good")
        try:
            p.add_domain()
            p.add_mailbox("alice")
            sql(p, "INSERT INTO relay_pools (name, down_time) VALUES ('default', '300 seconds'), "
                   "('stalled', '300 seconds')")
            sql(p, f"INSERT INTO relays (pool, host, port) VALUES ('default', '127.0.0.1', {good.port}), "
                   f"('stalled', '127.0.0.1', {stall.port})")
            p.start("wsmtp")
            p.start("wroute")
            # Interleaved, so that every batch of the first claims holds mail
            # for the stalled pool, the Maildir and the working pool.
            with p.smtp() as s:
                for i in range(PER_KIND):
                    s.sendmail("sender@example.test", ["x@stall.example"], message(f"stall-{i}"))
                    s.sendmail("sender@example.test", [f"alice@{p.domain}"], message(f"local-{i}"))
                    s.sendmail("sender@example.test", ["y@far.example"], message(f"relay-{i}"))
            wait_until(lambda: queue_counts(p)["ROUTED"] == 3 * PER_KIND, 30, what="all mail routed")
            # The router sends every remote domain to one pool; the stalled
            # pool's mail is pointed at its pool before delivery starts.
            sql(p, "UPDATE deliveries SET destination = 'stalled' WHERE recipient = 'x@stall.example'")
            start = time.monotonic()
            p.start("wdeliver")
            yield p, stall, good, start
        finally:
            good.stop()
            stall.close()


def done_subjects(p, prefix):
    return int(sql(p, "SELECT count(*) FROM messages m JOIN deliveries d ON d.message_id = m.id "
                      f"WHERE m.state = 5 AND d.recipient = '{prefix}'"))


@pytest.fixture(scope="module")
def prompt(env):
    p, stall, good, start = env
    wait_until(lambda: done_subjects(p, f"alice@{p.domain}") == PER_KIND and done_subjects(p, "y@far.example")
               == PER_KIND, PROMPT, interval=0.2, what="Maildir and working-pool mail DONE while a relay stalls")
    return time.monotonic() - start


def test_other_destinations_are_delivered_promptly_while_a_relay_stalls(env, prompt):
    p, stall, good, start = env
    assert len(p.maildir_files("alice")) == PER_KIND
    subjects = {m.split(b"Subject: ")[1].split(b"\r\n")[0].split(b"\n")[0] for _f, _r, m in good.messages()}
    assert subjects == {f"relay-{i}".encode() for i in range(PER_KIND)}
    print(f"Maildir and working pool done {prompt:.1f} s after wdeliver started; stalled relay timeout "
          f"{STALL_TIMEOUT} s")


def test_the_stalled_relay_holds_at_most_its_limit_of_workers(env, prompt):
    p, stall, good, start = env
    # Everything else is done; the stalled pool's workers are still waiting.
    assert stall.most >= 1, "the stalled relay was never tried"
    assert stall.most <= LIMIT, f"{stall.most} connections at once to the stalled relay (limit {LIMIT})"
    stalled = sql(p, "SELECT count(*) FROM deliveries WHERE recipient = 'x@stall.example' AND status = 'pending'")
    assert int(stalled) == PER_KIND, "the stalled pool's mail went somewhere"

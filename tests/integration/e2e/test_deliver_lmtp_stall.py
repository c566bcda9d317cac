"""An LMTP server that accepts connections and never answers (issue 16): the
deliverer waits out the timeout once per pass, not once per message (the
pass's other jobs are deferred at once as a failure of the server), and after
destination_backoff_after such passes the server is backed off as a whole.

The server is a scripted fake (a real one does not misbehave like this); it
counts connections. Timeouts are short (3 s) so that each pass is quick.
"""
import socket
import threading
import time

import pytest
from deliver_harness import Pipeline, set_section, sql, wait_until

USERS = [f"l{i}" for i in range(4)]


class SilentServer:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            self.conns.append(conn)

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.fixture(scope="module")
def env():
    server = SilentServer()
    with Pipeline(listener_extra="trusted_networks = 127.0.0.1/32\n") as p:
        set_section(p, "deliver", transports="maildir, lmtp", retry_base="1s", retry_max="1s", batch_size="20",
                    relay_connect_timeout="3s", relay_command_timeout="3s", destination_backoff_after="2",
                    destination_backoff_base="1h")
        try:
            p.add_domain()
            for u in USERS:
                p.ctl("mailbox", "add", f"{u}@{p.domain}", "--transport", "lmtp", "--lmtp",
                      f"127.0.0.1:{server.port}")
            p.start("wsmtp")
            p.start("wroute")
            with p.smtp() as s:
                for u in USERS:
                    s.sendmail("sender@example.test", [f"{u}@{p.domain}"], f"Subject: {u}\r\n\r\nbody\r\n")
            wait_until(lambda: sql(p, "SELECT count(*) FROM messages WHERE state = 3") == str(len(USERS)), 30,
                       what="all mail routed")
            p.start("wdeliver")
            yield p, server
        finally:
            server.close()


def test_one_timeout_per_pass_not_per_message(env):
    p, server = env
    wait_until(lambda: sql(p, "SELECT count(*) FROM deliveries WHERE attempts >= 1") == str(len(USERS)), 30,
               what="every delivery attempted once")
    # One batch holds all four messages: one connection, one timeout; the
    # other three deferred with the same failure at once.
    assert server.connections == 1, f"{server.connections} connections in the first pass"


def test_the_silent_server_is_backed_off(env):
    p, server = env
    wait_until(lambda: sql(p, "SELECT failures FROM destination_backoff WHERE transport = 'lmtp' "
                              f"AND destination = '127.0.0.1:{server.port}' AND backoff_until > now()") == "2",
               30, what="the LMTP server backed off after two failed passes")
    attempts = sql(p, "SELECT sum(attempts) FROM deliveries")
    connections = server.connections
    assert connections == 2, f"{connections} connections for two passes"
    assert attempts == str(2 * len(USERS)), attempts
    # Backed off for an hour: nothing more is tried.
    time.sleep(4)
    assert server.connections == connections
    assert sql(p, "SELECT sum(attempts) FROM deliveries") == attempts

#!/usr/bin/env python3
"""Per-client limits over IPv6 count a whole prefix (issue 15 item 7): many
addresses of one /64 share max_connections_per_client, max_connection_rate and
max_auth_failures_per_client, while a client from another /64 is still served.
The addresses live on the loopback of a private network namespace (the test
re-runs itself inside it, PostgreSQL and wsmtp included); without permission to
create one it is a skip (exit 77) that says so.
"""
import base64
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "harness"))
from deploy_hosts import skip  # noqa: E402

INSIDE = "WSMTP_IPV6_LIMITS_NETNS"
# Four /64s of the documentation prefix, 12 host addresses each.
NETS = {"conn": "2001:db8:0:1", "other": "2001:db8:0:2", "auth": "2001:db8:0:3", "auth_other": "2001:db8:0:4"}
HOSTS = 12


def addr(net, host):
    return f"{NETS[net]}::{host:x}"


def outside():
    name = f"wsl6-{uuid.uuid4().hex[:8]}"
    r = subprocess.run(["ip", "netns", "add", name], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        skip(f"cannot create a network namespace for the IPv6 addresses: {r.stdout.strip()}")
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        for net in NETS:
            for host in range(1, HOSTS + 1):
                # nodad: usable at once, no duplicate address detection wait.
                subprocess.run(["ip", "-n", name, "-6", "addr", "add", f"{addr(net, host)}/64", "dev", "lo", "nodad"],
                               check=True)
        env = dict(os.environ, **{INSIDE: "1"})
        r = subprocess.run(["ip", "netns", "exec", name, sys.executable, os.path.abspath(__file__)], env=env)
        sys.exit(r.returncode)
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def inside():
    from pipeline import Pipeline
    from listener_harness import RawSmtp, add_auth_user, make_cert

    class Client(RawSmtp):
        """RawSmtp from a chosen source address to wsmtp on [::1]."""

        def __init__(self, port, source):
            self.sock = socket.create_connection(("::1", port), timeout=20, source_address=(source, 0))
            self.buf = b""

    def greeting(p, source):
        c = Client(p.port, source)
        return c, c.reply()

    def finish(c):
        """QUIT and wait for the close, so the server has released the slot."""
        assert c.cmd("QUIT")[0] == 221
        assert c.closed()
        c.close()
        time.sleep(0.05)

    def connection_limit(p):
        held = []
        for host in (1, 2, 3):
            c, (code, lines) = greeting(p, addr("conn", host))
            assert code == 220, (host, lines)
            held.append(c)
        # A fourth address of the same /64 is one client too many.
        c, (code, lines) = greeting(p, addr("conn", 4))
        assert code == 421 and "too many connections" in lines[0], lines
        assert c.closed()
        c.close()
        # Another /64 is a different client.
        c, (code, lines) = greeting(p, addr("other", 1))
        assert code == 220, lines
        held.append(c)
        for c in held:
            finish(c)
        print("connections: 3 addresses of one /64 filled its slots; a fourth was refused, another /64 served")

    def connection_rate(p):
        # 4 attempts of this /64 so far (the refused one counts); the rate is 8 a minute.
        for host in range(5, 9):
            c, (code, lines) = greeting(p, addr("conn", host))
            assert code == 220, (host, lines)
            finish(c)
        c, (code, lines) = greeting(p, addr("conn", 9))
        assert code == 421 and "try again later" in lines[0], lines
        c.close()
        c, (code, lines) = greeting(p, addr("other", 2))
        assert code == 220, lines
        finish(c)
        print("rate: the 9th connection from 8 addresses of one /64 was refused; another /64 served")

    def auth_attempt(p, source, password):
        c, (code, lines) = greeting(p, source)
        assert code == 220, lines
        c.cmd("EHLO v6.example")
        assert c.cmd("STARTTLS")[0] == 220
        c.starttls()
        c.cmd("EHLO v6.example")
        token = base64.b64encode(f"\0carol\0{password}".encode()).decode()
        code, lines = c.cmd(f"AUTH PLAIN {token}")
        c.close()
        return code, lines

    def auth_failures(p):
        for host in (1, 2):
            code, lines = auth_attempt(p, addr("auth", host), "wrong")
            assert code == 535, (host, lines)
        # The third address of the /64 is refused before its password is checked.
        code, lines = auth_attempt(p, addr("auth", 3), "correct horse")
        assert code == 421 and "failed authentications" in lines[0], lines
        code, lines = auth_attempt(p, addr("auth_other", 1), "correct horse")
        assert code == 235, lines
        print("AUTH: 2 failures from 2 addresses blocked a third address of that /64; another /64 authenticated")

    tmp = tempfile.mkdtemp(prefix="wsmtp-v6lim-")
    try:
        cert, key = make_cert(tmp)
        extra = (f"tls_cert_file = {cert}\ntls_key_file = {key}\n"
                 "max_connections_per_client = 3\nmax_connection_rate = 8\nmax_auth_failures_per_client = 2\n"
                 "ipv6_limit_prefix = 64\n")
        with Pipeline(listener_extra=extra, ipv6=True) as p:
            add_auth_user(p, "carol", "correct horse")
            p.start("wsmtp")
            connection_limit(p)
            connection_rate(p)
            auth_failures(p)
            print("listener IPv6 limits: passed")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    if os.environ.get(INSIDE):
        inside()
    else:
        outside()


if __name__ == "__main__":
    main()

"""Per-client limits over IPv6 count a whole prefix (issue 15 item 7): many
addresses of one /64 share max_connections_per_client, max_connection_rate and
max_auth_failures_per_client, while a client from another /64 is still served.
The addresses live on the loopback of a private network namespace. PostgreSQL,
wsmtp and the clients all run in it: the outer pytest run makes the namespace
and runs this file again inside it (INSIDE set), where the real tests run; each
outer test reports the outcome of its inner namesake. Without permission to
create a namespace the tests are skipped (exit 77 for ctest) with the reason.
"""
import base64
import os
import socket
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET

import pytest

INSIDE = "WSMTP_IPV6_LIMITS_NETNS"
# Four /64s of the documentation prefix, 12 host addresses each.
NETS = {"conn": "2001:db8:0:1", "other": "2001:db8:0:2", "auth": "2001:db8:0:3", "auth_other": "2001:db8:0:4"}
HOSTS = 12
# Inside, these run in this order on one listener: the rate test counts the
# connections the first one made.
BEHAVIOURS = ["test_connection_limit_counts_the_prefix", "test_connection_rate_counts_the_prefix",
              "test_auth_failures_count_the_prefix"]


def addr(net, host):
    return f"{NETS[net]}::{host:x}"


if not os.environ.get(INSIDE):

    class InnerRun:
        """This file's tests run once inside the namespace; their outcomes by name."""

        def __init__(self, ns, junit):
            env = dict(os.environ, **{INSIDE: "1"})
            r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "pytest", "-q", "-p",
                                "no:cacheprovider", f"--junitxml={junit}", os.path.abspath(__file__)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=800)
            self.output = r.stdout
            print(r.stdout)
            self.outcomes = {}
            if os.path.exists(junit):
                for case in ET.parse(junit).getroot().iter("testcase"):
                    # A teardown error is a second entry of the same name: the worst wins.
                    kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
                    outcome = kinds[0] if kinds else "passed"
                    if self.outcomes.get(case.get("name"), "passed") == "passed":
                        self.outcomes[case.get("name")] = outcome

    @pytest.fixture(scope="module")
    def inner(tmp_path_factory):
        name = f"wsl6-{uuid.uuid4().hex[:8]}"
        try:
            r = subprocess.run(["ip", "netns", "add", name], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
        except FileNotFoundError:
            pytest.skip("iproute2 (ip) is not installed: no network namespace for the IPv6 addresses")
        if r.returncode != 0:
            pytest.skip(f"cannot create a network namespace for the IPv6 addresses: {r.stdout.strip()}")
        try:
            subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
            for net in NETS:
                for host in range(1, HOSTS + 1):
                    # nodad: usable at once, no duplicate address detection wait.
                    subprocess.run(["ip", "-n", name, "-6", "addr", "add", f"{addr(net, host)}/64", "dev", "lo",
                                    "nodad"], check=True)
            yield InnerRun(name, str(tmp_path_factory.mktemp("wsmtp-v6lim-junit") / "inner.xml"))
        finally:
            subprocess.run(["ip", "netns", "del", name], check=False)

    @pytest.mark.parametrize("behaviour", BEHAVIOURS)
    def test_in_namespace(inner, behaviour):
        outcome = inner.outcomes.get(behaviour, "not run")
        if outcome == "skipped":
            pytest.skip(f"{behaviour} skipped inside the namespace:\n{inner.output}")
        assert outcome == "passed", f"{behaviour} {outcome} inside the namespace:\n{inner.output}"

else:
    from listener_harness import RawSmtp, add_auth_user, make_cert
    from pipeline import Pipeline

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

    @pytest.fixture(scope="module")
    def p(tmp_path_factory):
        cert, key = make_cert(str(tmp_path_factory.mktemp("wsmtp-v6lim-")))
        extra = (f"tls_cert_file = {cert}\ntls_key_file = {key}\n"
                 "max_connections_per_client = 3\nmax_connection_rate = 8\nmax_auth_failures_per_client = 2\n"
                 "ipv6_limit_prefix = 64\n")
        with Pipeline(listener_extra=extra, ipv6=True) as p:
            add_auth_user(p, "carol", "correct horse")
            p.start("wsmtp")
            yield p

    def test_connection_limit_counts_the_prefix(p):
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

    def test_connection_rate_counts_the_prefix(p):
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

    def test_auth_failures_count_the_prefix(p):
        for host in (1, 2):
            code, lines = auth_attempt(p, addr("auth", host), "wrong")
            assert code == 535, (host, lines)
        # The third address of the /64 is refused before its password is checked.
        code, lines = auth_attempt(p, addr("auth", 3), "correct horse")
        assert code == 421 and "failed authentications" in lines[0], lines
        code, lines = auth_attempt(p, addr("auth_other", 1), "correct horse")
        assert code == 235, lines
        print("AUTH: 2 failures from 2 addresses blocked a third address of that /64; another /64 authenticated")

"""STARTTLS to a real relay: a throwaway Postfix whose smtpd offers STARTTLS
with a certificate from a throwaway CA (made with openssl in the test's
directory), and Postfix's smtp-sink, which offers no STARTTLS at all.

The pool requires TLS and wdeliver verifies relays against the test CA
([deliver] relay_ca_file):
1. mail reaches Postfix over TLS — its Received header records the TLS
   session and "with ESMTPS";
2. a relay without STARTTLS gets nothing: the delivery is deferred with an
   error that says the relay does not offer STARTTLS;
3. a relay whose certificate does not match the name we connect by
   ("localhost"; the certificate names only 127.0.0.1) gets nothing either:
   deferred with "certificate not verified";
4. once the pool points at the verified relay again, the deferred message
   arrives there over TLS, once.
Bounded: 4 messages, well under a minute.
"""
import re

import pytest
from deliver_harness import Pipeline, queue_counts, set_section, sql, wait_until
from deliver_relays import SmtpSink
from deliver_tls import make_test_ca, tls_postfix

# The functions below run in file order: each points the pool at another relay,
# and the message deferred in step 2 arrives in step 4.


def send(p, subject):
    with p.smtp() as s:
        s.sendmail("alice@example.test", ["r@far.example"],
                   f"Subject: {subject}\r\nMessage-ID: <{subject}@t>\r\n\r\nover TLS only\r\n")


def postfix_copies(pf):
    """subject -> [message text] of what the Postfix relay delivered."""
    out = {}
    for path in pf.maildir_files():
        with open(path) as f:
            text = f.read()
        out.setdefault(re.search(r"(?m)^Subject: (\S+)", text).group(1), []).append(text)
    return out


def pending_error(p, pattern):
    return sql(p, "SELECT count(*) FROM deliveries WHERE status = 'pending' AND attempts >= 1 "
                  f"AND last_error LIKE '{pattern}'") != "0"


class Relay:
    """The pool's one relay, moved from one server to another."""

    def __init__(self, p):
        self.p = p
        self.current = None

    def use(self, host, port):
        if self.current:
            self.p.ctl("relay", "remove", "default", self.current[0], "--port", str(self.current[1]))
        self.p.ctl("relay", "add", "default", host, "--port", str(port))
        self.current = host, port


@pytest.fixture(scope="module")
def env():
    with Pipeline(lease_time="20s", listener_extra="trusted_networks = 127.0.0.1/32\n") as p:
        ca, cert, key = make_test_ca(p.root)
        # Short destination backoff too: steps 2 and 3 fail the pool as a whole,
        # and step 4 must not wait out a 60 s backoff (issue 16's defaults).
        set_section(p, "deliver", transports="maildir, relay", retry_base="1s", retry_max="2s",
                    destination_backoff_base="1s", destination_backoff_max="2s",
                    relay_connect_timeout="3s", relay_command_timeout="10s", relay_ca_file=ca)
        pf = tls_postfix(p.root, "far.example", ["r"], cert, key)
        sink = SmtpSink(p.root, "plain")
        try:
            p.add_domain()
            p.add_mailbox("alice")
            yield p, pf, sink, Relay(p)
        finally:
            pf.stop()
            sink.stop()


def test_pool_requires_tls(env):
    p = env[0]
    assert "tls=required" in p.ctl("relay", "pool-set", "default", "--tls", "required").stdout


def test_mail_reaches_postfix_over_verified_tls(env):
    p, pf, sink, relay = env
    sql(p, "UPDATE relay_pools SET down_time = '1 second'")  # failing relays return quickly
    relay.use("127.0.0.1", pf.port)
    for name in ("wsmtp", "wroute", "wdeliver", "wreaper"):
        p.start(name)
    for i in range(3):
        send(p, f"tls-{i}")
    wait_until(lambda: len(pf.maildir_files()) == 3, 60, interval=0.3, what="3 messages at Postfix")
    for subject, copies in postfix_copies(pf).items():
        assert len(copies) == 1, subject
        assert re.search(r"\(using TLSv1\.[23] with cipher ", copies[0]), copies[0][:600]
        assert "with ESMTPS id" in copies[0], copies[0][:600]
    wait_until(lambda: queue_counts(p)["DONE"] == 3, 30, what="3 DONE")


def test_relay_without_starttls_gets_nothing(env):
    p, pf, sink, relay = env
    relay.use("127.0.0.1", sink.port)
    send(p, "later")
    wait_until(lambda: pending_error(p, "%does not offer STARTTLS, and TLS is required%"), 30,
               what="a deferral naming the missing STARTTLS")
    error = sql(p, "SELECT last_error FROM deliveries WHERE status = 'pending'")
    assert error.startswith("4.4.1 "), error
    assert sink.messages() == [], "mail went to a relay without TLS"


def test_certificate_not_naming_the_relay_gets_nothing(env):
    p, pf, sink, relay = env
    relay.use("localhost", pf.port)
    wait_until(lambda: pending_error(p, "%certificate not verified: hostname mismatch%"), 30,
               what="a deferral naming the failed verification")
    assert "later" not in postfix_copies(pf)


def test_deferred_message_arrives_once_over_tls_on_the_verified_relay(env):
    p, pf, sink, relay = env
    relay.use("127.0.0.1", pf.port)
    wait_until(lambda: "later" in postfix_copies(pf) and queue_counts(p)["DONE"] == 4, 60, interval=0.3,
               what="the deferred message delivered")
    copies = postfix_copies(pf)["later"]
    assert len(copies) == 1 and "with ESMTPS id" in copies[0]
    assert sink.messages() == []

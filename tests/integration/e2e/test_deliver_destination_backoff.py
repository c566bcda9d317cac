"""Destination backoff (issue 16): a relay pool whose only relay is dead fails
as a whole; after destination_backoff_after failures in a row it is backed off,
its mail is not claimed until the backoff ends (no attempts, no claims), its
deferred deliveries are not due before then, `wsmtpctl queue` shows it, and
once the relay is back the mail flows and the backoff is cleared.

The relay is a real smtp-sink behind the harness's proxy; with smtp-sink
stopped the proxy closes each connection at once (no greeting), as a relay
whose service is down behind a load balancer does.
"""
import json
import time

import pytest
from deliver_harness import Pipeline, queue_counts, set_section, sql, wait_until
from deliver_relays import SmtpSink

MESSAGES = 5
BACKOFF = 10


@pytest.fixture(scope="module")
def env():
    with Pipeline(listener_extra="trusted_networks = 127.0.0.1/32\n") as p:
        set_section(p, "deliver", transports="maildir, relay", retry_base="1s", retry_max="2s",
                    destination_backoff_after="2", destination_backoff_base=f"{BACKOFF}s",
                    destination_backoff_max=f"{2 * BACKOFF}s", relay_connect_timeout="2s",
                    relay_command_timeout="5s")
        relay = SmtpSink(p.root, "a")
        try:
            relay.stop_backend()
            p.add_domain()
            sql(p, "INSERT INTO relay_pools (name, down_time) VALUES ('default', '1 second')")
            sql(p, f"INSERT INTO relays (pool, host, port) VALUES ('default', '127.0.0.1', {relay.port})")
            p.start_all()
            with p.smtp() as s:
                for i in range(MESSAGES):
                    s.sendmail("sender@example.test", ["y@far.example"],
                               f"Subject: b-{i}\r\nMessage-ID: <b-{i}@t>\r\n\r\nbody\r\n")
            yield p, relay
        finally:
            relay.stop()


def backoff_row(p):
    return sql(p, "SELECT failures, extract(epoch FROM backoff_until - now()) FROM destination_backoff "
                  "WHERE transport = 'relay' AND destination = 'default' AND backoff_until > now()")


def claims_and_attempts(p):
    return sql(p, "SELECT sum(d.attempts), max(m.delivering_at) FROM deliveries d "
                  "JOIN messages m ON m.id = d.message_id WHERE d.recipient = 'y@far.example'")


@pytest.fixture(scope="module")
def backed_off(env):
    p, relay = env
    wait_until(lambda: backoff_row(p) != "", 30, interval=0.1, what="the pool backed off")
    failures, left = backoff_row(p).split("|")
    return int(failures), float(left), time.monotonic()


def test_the_failing_pool_is_backed_off_after_the_configured_failures(env, backed_off):
    failures, left, _ = backed_off
    assert failures == 2, f"backed off after {failures} failures, configured 2"
    # (seen up to a few seconds late on a loaded machine)
    assert BACKOFF - 4 <= left <= BACKOFF + 1, left


def test_deferred_deliveries_wait_for_the_end_of_the_backoff(env, backed_off):
    p, relay = env
    # The batch whose failure started the backoff was finished in the same
    # transaction that recorded it (one now()); deliveries deferred earlier
    # keep their due time, and the claim skips them until the backoff ends.
    deferred, early = sql(p, "SELECT count(*), count(*) FILTER (WHERE d.next_attempt_at < b.backoff_until) "
                             "FROM deliveries d JOIN messages m ON m.id = d.message_id, destination_backoff b "
                             "WHERE d.recipient = 'y@far.example' AND d.status = 'pending' "
                             "AND m.state_changed_at = b.failed_at").split("|")
    assert int(deferred) >= 1, "no delivery deferred by the failure that started the backoff"
    assert early == "0", f"{early} of {deferred} deliveries due before the backoff ends (retry_max is 2 s)"


def test_queue_shows_the_backed_off_destination(env, backed_off):
    p, relay = env
    out = p.ctl("queue").stdout
    assert "destinations backed off" in out and "relay default" in out and "after 2 failures" in out, out
    data = json.loads(p.ctl("queue", "--json").stdout)
    entries = data["backed_off_destinations"]
    assert [(e["transport"], e["destination"], e["failures"]) for e in entries] == [("relay", "default", 2)]


def test_no_claims_or_attempts_during_the_backoff(env, backed_off):
    p, relay = env
    _, left, seen_at = backed_off
    before = claims_and_attempts(p)
    # Without the backoff the deliveries would be retried every 1-2 s.
    time.sleep(max(0.0, left - 3 - (time.monotonic() - seen_at)))
    assert backoff_row(p) != "", "backoff ended early"
    assert claims_and_attempts(p) == before, "the backed-off pool's mail was claimed or attempted"


def test_mail_flows_once_the_relay_is_back(env, backed_off):
    p, relay = env
    relay.start()
    wait_until(lambda: queue_counts(p)["DONE"] == MESSAGES, BACKOFF * 2 + 30, interval=0.3,
               what="mail delivered after the backoff")
    assert len(relay.messages()) == MESSAGES
    assert sql(p, "SELECT count(*) FROM destination_backoff") == "0", "a success did not clear the backoff"

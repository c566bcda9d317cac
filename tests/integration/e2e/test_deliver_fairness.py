"""Issue 16, "abuse must not clog delivery": the order of delivery, read from the
database's timestamps, not a time (tests/bench/deliver_fairness.py times it).

The issue's scenario scaled down (harness/fairness_scenario.py): with wroute and
wdeliver paused, 3,000 messages from one sender to 20 Maildirs, 300 to a
mailbox over its quota (each copy deferred with 4.2.2), then one message from
another sender; the router and deliverer as configured by default. After they
resume, the legitimate message's delivery must be final before 95 % of the
flood's are. Then the retry lane: the 300 deferred copies are made due again
with `wsmtpctl retry` while wdeliver is paused, 50 fresh messages are routed
behind them, and the fresh ones must all be delivered before half the retries
have been claimed again. Last the deliverer alone: with only wdeliver paused,
another 3,000-message flood is routed before a legitimate message from a client
of its own arrives, so the router's order cannot help it; its delivery must
still be final before 95 % of that flood's. The functions run in file order on
one pipeline: the second reuses the first's deferred copies. Bounded: ~6,400
messages, each wait a minute or three at most.
"""
import json

import pytest
from deliver_harness import Pipeline, queue_counts, set_section, sql, wait_until

import fairness_scenario as fs

FLOOD, OVER_QUOTA, FRESH = 3000, 300, 50
FRESH_SENDER = "fresh@example.org"
ROUTED_FLOOD_SENDER, NEWCOMER = "flood2@flood.test", "bob@example.org"


@pytest.fixture(scope="module")
def p():
    with Pipeline(lease_time="60s") as p:
        for section in ("router", "deliver"):
            set_section(p, section)  # every key at its default
        try:
            yield p
        finally:
            fs.resume(p)  # a stopped daemon would not act on close()'s SIGTERM


def epoch(p, expr):
    return float(sql(p, f"SELECT extract(epoch FROM {expr})"))


@pytest.fixture(scope="module")
def flood_order(p):
    """The scenario, run to the end: the flood drained, the legitimate message
    delivered, each over-quota copy tried (and deferred) once."""
    fs.add_mailboxes(p)
    fs.start_paused(p)
    fs.load(p, FLOOD, OVER_QUOTA)
    fs.resume(p)
    fs.wait_flood_drained(p, 180)
    wait_until(lambda: sql(p, f"SELECT count(*) FROM messages WHERE envelope_from = '{fs.LEGIT_SENDER}' "
                              "AND state = 5") == "1", 60, what="the legitimate message delivered")
    wait_until(lambda: sql(p, "SELECT count(*) FROM deliveries d JOIN messages m ON m.id = d.message_id "
                              f"WHERE m.envelope_from = '{fs.OVER_QUOTA_SENDER}' AND d.attempts = 0") == "0",
               120, what="every over-quota copy tried once")
    return {**fs.order_report(p), "clocks": fs.fairness_clocks(p)}


def test_the_legitimate_message_is_final_before_95_percent_of_the_flood(flood_order):
    r = flood_order
    assert r["flood_final"] == FLOOD, r
    assert r["flood_final_before"] <= 0.05 * FLOOD, (
        f"{r['flood_final_before']} of {FLOOD} flood deliveries ({r['flood_final_before'] / FLOOD:.1%}) were final "
        f"before the legitimate message's; ahead of it by route_vtime: {r['flood_vtime_before']} flood and "
        f"{r['over_quota_vtime_before']} over-quota, by routed_at: {r['flood_routed_before']} and "
        f"{r['over_quota_routed_before']}, by delivering_at: {r['flood_claimed_before']} and "
        f"{r['over_quota_claimed_before']}; router clocks (ms): {r['clocks']}, now {r['now_ms']}")


def test_retries_made_due_again_do_not_go_ahead_of_fresh_mail(p, flood_order):
    deferred = f"m.envelope_from = '{fs.OVER_QUOTA_SENDER}' AND m.state = 3"
    backlog = int(sql(p, f"SELECT count(*) FROM messages m WHERE {deferred}"))
    assert backlog >= OVER_QUOTA - 10, f"only {backlog} over-quota copies deferred"
    fs.pause(p, ("wdeliver",))
    retried_at = epoch(p, "now()")
    retried = json.loads(p.ctl("--json", "retry", "--deferred", "--sender", fs.OVER_QUOTA_SENDER).stdout)
    assert retried["changed"] == backlog, retried
    routed_before = queue_counts(p)["ROUTED"]
    with p.smtp() as s:
        for i in range(FRESH):
            s.sendmail(FRESH_SENDER, [f"{fs.LEGIT_USER}@{p.domain}"], f"Subject: fresh {i}\r\n\r\nfresh {i}\r\n")
    wait_until(lambda: queue_counts(p)["ROUTED"] == routed_before + FRESH, 60, what="the fresh mail routed")
    fs.resume(p, ("wdeliver",))
    wait_until(lambda: sql(p, f"SELECT count(*) FROM messages WHERE envelope_from = '{FRESH_SENDER}' "
                              "AND state = 5") == str(FRESH), 120, what="the fresh mail delivered")
    last_fresh = epoch(p, f"(SELECT max(done_at) FROM messages WHERE envelope_from = '{FRESH_SENDER}')")
    # delivering_at is stamped on every move to DELIVERING: a claim of a retry since the operator's.
    reclaimed = int(sql(p, f"SELECT count(*) FROM messages m WHERE m.envelope_from = '{fs.OVER_QUOTA_SENDER}' "
                           f"AND m.delivering_at > to_timestamp({retried_at}) "
                           f"AND m.delivering_at <= to_timestamp({last_fresh})"))
    assert reclaimed < backlog / 2, (
        f"{reclaimed} of {backlog} retries were claimed again before the last of {FRESH} fresh messages was "
        f"delivered ({last_fresh - retried_at:.2f} s after the retry)")


def test_the_deliverer_alone_puts_a_newcomer_ahead_of_a_routed_flood(p, flood_order):
    fs.pause(p, ("wdeliver",))
    fs.load(p, FLOOD, 0, "127.0.0.2", flood_sender=ROUTED_FLOOD_SENDER, legit_sender=NEWCOMER)
    wait_until(lambda: sql(p, "SELECT count(*) FROM messages WHERE state = 3 AND envelope_from IN "
                              f"('{ROUTED_FLOOD_SENDER}', '{NEWCOMER}')") == str(FLOOD + 1), 120,
               what="the second flood and the newcomer routed")
    fs.resume(p, ("wdeliver",))
    fs.wait_flood_drained(p, 180, ROUTED_FLOOD_SENDER)
    wait_until(lambda: fs.undelivered(p, NEWCOMER) == 0, 60, what="the newcomer's message delivered")
    r = fs.order_report(p, ROUTED_FLOOD_SENDER, NEWCOMER)
    assert r["flood_final"] == FLOOD, r
    assert r["flood_final_before"] <= 0.05 * FLOOD, (
        f"{r['flood_final_before']} of {FLOOD} routed flood deliveries ({r['flood_final_before'] / FLOOD:.1%}) were "
        f"final before the newcomer's; ahead of it by route_vtime: {r['flood_vtime_before']}, by delivering_at: "
        f"{r['flood_claimed_before']}")

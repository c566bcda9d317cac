"""Leases that outlive slow work, against a real relay (Postfix's smtp-sink
behind a proxy that stalls the end of a message's data) with a 3 s lease and a
reaper running every second:

1. A relay that stalls the final dot for more than twice the lease time: the
   deliverer renews its lease meanwhile, so the second deliverer never takes
   the message over. The relay receives it exactly once, nothing is held and
   no expiry is counted. (Without renewal the lease ran out, the other worker
   sent the message again, and the expiry was counted towards holding it.)
2. wsmtpctl hold and delete while a deliverer is stuck in one message of a
   batch of three: the message in flight is finished (it cannot be unsent) and
   is DONE; nothing is started for the held one, which waits in ROUTED, held,
   its delivery pending, and goes out once after a release; nothing is sent
   for the deleted one, and the deliverer says so once.
Bounded: a few messages, about a minute.
"""
import re
import time

import pytest
from deliver_harness import Pipeline, queue_counts, set_section, sql, wait_until
from deliver_relays import SmtpSink

# The functions below run in file order on one pipeline: phase 2 counts on
# phase 1's message, and the release on phase 2's held message.
LEASE = 3
STALL = 2 * LEASE + 3  # longer than twice the lease


def deliver_section(workers):
    return dict(transports="maildir, relay", retry_base="1s", retry_max="2s", batch_size="20",
                relay_connect_timeout="5s", relay_command_timeout="60s", min_workers=str(workers),
                max_workers=str(workers))


def received(sink):
    """Envelope sender -> copies the relay received (complete ones only)."""
    out = {}
    for frm, _rcpts, msg in sink.messages():
        if b"body for" in msg:
            out[frm] = out.get(frm, 0) + 1
    return out


def send(p, sender, rcpt="r@far.example"):
    with p.smtp() as s:
        s.sendmail(sender, [rcpt], f"Subject: from {sender}\r\n\r\nbody for {sender}\r\n")


def msg_id(p, sender):
    return sql(p, f"SELECT id FROM messages WHERE envelope_from = '{sender}'")


@pytest.fixture(scope="module")
def env():
    with Pipeline(lease_time=f"{LEASE}s", listener_extra="trusted_networks = 127.0.0.1/32\n") as p:
        set_section(p, "deliver", **deliver_section(2))
        relay = SmtpSink(p.root, "slow")
        relay.proxy.idle_timeout = None  # the stall is the relay's silence
        try:
            p.add_domain()
            sql(p, "INSERT INTO relay_pools (name, max_messages_per_connection, down_time, tls_policy) "
                   "VALUES ('default', 100, '300 seconds', 'none')")
            sql(p, f"INSERT INTO relays (pool, host, port, weight) VALUES ('default', '127.0.0.1', {relay.port}, 1)")
            for name in ("wsmtp", "wroute", "wdeliver", "wreaper"):
                p.start(name)
            yield p, relay
        finally:
            relay.stop()


def test_lease_renewed_through_a_stall_past_twice_the_lease(env):
    p, relay = env
    # A stall past twice the lease: renewed, sent once, never counted.
    relay.proxy.stall_final_dot(STALL)
    send(p, "slow@example.test")
    assert relay.proxy.stalled.wait(30), "the relay never saw the final dot"
    stall_began = time.time()
    wait_until(lambda: queue_counts(p)["DONE"] == 1, STALL + 30, interval=0.2, what="the stalled message DONE")
    # A copy sent by a worker that took the message over finishes first; the
    # stalled one reaches the relay when the stall ends.
    time.sleep(max(0.0, stall_began + STALL + 1 - time.time()))
    copies = received(relay)
    assert copies == {"slow@example.test": 1}, f"relay received {copies}"
    assert sql(p, "SELECT count(*) FROM messages WHERE held") == "0"
    assert sql(p, "SELECT max(expired_claims) FROM messages") == "0", "an expiry was counted"
    assert "re-claimed" not in p.log("wdeliver"), "another worker took the message over"
    assert "lease expired" not in p.log("wreaper"), "the reaper returned a live lease"


@pytest.fixture(scope="module")
def stuck_batch(env):
    """One deliverer stuck on one message of a batch of three; the other two are
    held and deleted meanwhile. Returns the held, deleted and stuck senders and ids,
    and when the stall began."""
    p, relay = env
    p.kill("wdeliver", sig=15)
    set_section(p, "deliver", **deliver_section(1))
    senders = ["m1@example.test", "m2@example.test", "m3@example.test"]
    for s in senders:
        send(p, s)
    wait_until(lambda: queue_counts(p)["ROUTED"] == 3, 30, interval=0.2, what="three messages ROUTED")
    relay.proxy.stall_final_dot(STALL)
    p.start("wdeliver")
    assert relay.proxy.stalled.wait(30), "the relay never saw the final dot"
    stuck = relay.proxy.stalled_sender
    held, deleted = [s for s in senders if s != stuck]
    ids = {"held": msg_id(p, held), "deleted": msg_id(p, deleted), "stuck": msg_id(p, stuck)}
    # All three are claimed together, so all are DELIVERING under one lease.
    claimed = sql(p, f"SELECT count(*) FROM messages WHERE state = 4 AND id IN ({ids['held']}, {ids['deleted']}, "
                     f"{ids['stuck']})")
    p.ctl("hold", ids["held"], ids["stuck"])
    p.ctl("delete", ids["deleted"])
    stall_began = time.time()
    return {"senders": {"held": held, "deleted": deleted, "stuck": stuck}, "ids": ids, "claimed": claimed,
            "stall_began": stall_began}


def test_batch_of_three_is_claimed_together(env, stuck_batch):
    assert stuck_batch["claimed"] == "3", sql(env[0], "SELECT id, state FROM messages ORDER BY id")


def test_message_in_flight_is_finished_and_not_left_held(env, stuck_batch):
    p, ids = env[0], stuck_batch["ids"]
    wait_until(lambda: sql(p, f"SELECT state FROM messages WHERE id = {ids['stuck']}") == "5", STALL + 30,
               interval=0.2, what="the message in flight DONE")
    assert sql(p, f"SELECT held FROM messages WHERE id = {ids['stuck']}") == "f", "a DONE message stayed held"


def test_held_message_waits_in_routed_with_its_delivery_pending(env, stuck_batch):
    p, ids = env[0], stuck_batch["ids"]
    wait_until(lambda: sql(p, f"SELECT state FROM messages WHERE id = {ids['held']}") == "3", 30, interval=0.2,
               what="the held message back in ROUTED")
    assert sql(p, f"SELECT held FROM messages WHERE id = {ids['held']}") == "t"
    assert sql(p, f"SELECT status || ' ' || attempts FROM deliveries WHERE message_id = {ids['held']}") == "pending 0"


def test_deleted_message_is_gone(env, stuck_batch):
    assert sql(env[0], f"SELECT count(*) FROM messages WHERE id = {stuck_batch['ids']['deleted']}") == "0"


def test_only_the_message_in_flight_reaches_the_relay(env, stuck_batch):
    p, relay = env
    ids, senders = stuck_batch["ids"], stuck_batch["senders"]
    wait_until(lambda: sql(p, f"SELECT state FROM messages WHERE id = {ids['stuck']}") == "5", STALL + 30,
               interval=0.2, what="the message in flight DONE")
    time.sleep(max(0.0, stuck_batch["stall_began"] + 2 * LEASE - time.time()))  # no late starts after the stall
    show = p.ctl("show", ids["held"]).stdout
    assert "pending" in show, show
    copies = received(relay)
    assert copies.get(senders["stuck"]) == 1 and senders["held"] not in copies and senders["deleted"] not in copies, \
        copies


def test_deliverer_logs_the_hold_and_the_delete_and_no_expiry(env, stuck_batch):
    p, ids = env[0], stuck_batch["ids"]
    log = p.log("wdeliver")
    assert re.search(rf"msg={ids['deleted']} deleted by an operator", log), log[-2000:]
    assert re.search(rf"msg={ids['held']} held by an operator", log), log[-2000:]
    assert sql(p, "SELECT max(expired_claims) FROM messages") == "0", "an expiry was counted"
    assert "lease expired" not in p.log("wreaper")


def test_held_message_goes_out_once_after_a_release(env, stuck_batch):
    p, relay = env
    ids, senders = stuck_batch["ids"], stuck_batch["senders"]
    p.ctl("release", ids["held"])
    wait_until(lambda: sql(p, f"SELECT state FROM messages WHERE id = {ids['held']}") == "5", 30, interval=0.2,
               what="the released message DONE")
    copies = received(relay)
    assert copies == {"slow@example.test": 1, senders["stuck"]: 1, senders["held"]: 1}, copies

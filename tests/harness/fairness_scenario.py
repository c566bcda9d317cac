"""Issue 16's scenario, "abuse must not clog delivery", on a Pipeline: shared by
tests/bench/deliver_fairness.py (the issue's numbers, timed) and
tests/integration/e2e/test_deliver_fairness.py (scaled down, the order asserted).

With wroute and wdeliver paused (SIGSTOP to each daemon's process group, so the
supervisor and its workers stop together), the queue is loaded with a flood from
one sender to ordinary Maildirs, mail from a second sender to a mailbox over its
quota (every copy fails temporarily), then one message from a third sender.
Then both stages resume, and the database's timestamps say where the legitimate
message went in each stage's order. All mail comes from 127.0.0.1, as in the
issue's measurement on the README's demo, unless load() is told to send the
legitimate message from another loopback address (a client of its own).
"""
import json
import os
import signal
import smtplib
import subprocess
import time

from deliver_harness import sql, wait_until

FLOOD_SENDER = "flood@flood.test"
OVER_QUOTA_SENDER = "bulk@bulk.test"
LEGIT_SENDER = "alice@example.org"
FULL_USER = "full"
LEGIT_USER = "legit"
# One SMTP session per flood mailbox, as in deliver_burst.py: a flood into
# ordinary mailboxes, not into one destination.
FLOOD_USERS = [f"user{i:02d}" for i in range(20)]


def add_mailboxes(p):
    """The flood's mailboxes, the legitimate recipient, and a mailbox that is
    over its quota (one message allowed, one already there), so every copy
    for it is deferred with 4.2.2 under the default over_quota = defer."""
    p.add_domain()
    for user in FLOOD_USERS + [FULL_USER, LEGIT_USER]:
        p.add_mailbox(user)
    p.ctl("mailbox", "quota", f"{FULL_USER}@{p.domain}", "none", "--messages", "1")
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(p.maildir(FULL_USER), sub), exist_ok=True)
    with open(os.path.join(p.maildir(FULL_USER), "new", "1.filler.host"), "w") as f:
        f.write("Subject: the message that fills the quota\n\nx\n")


def start_paused(p):
    """Starts all four daemons, waits until wroute's and wdeliver's first workers
    wait for work, and pauses those two."""
    for name in ("wsmtp", "wroute", "wdeliver", "wreaper"):
        p.start(name)
    for name in ("wroute", "wdeliver"):
        wait_until(lambda: "waiting for work" in p.log(name), 30, what=f"a {name} worker waiting for work")
    pause(p)


def signal_stages(p, sig, names=("wroute", "wdeliver")):
    # start_new_session made each daemon its own process group: its workers too.
    for name in names:
        for proc in p.procs.get(name, []):
            if proc.poll() is None:
                os.killpg(proc.pid, sig)


def pause(p, names=("wroute", "wdeliver")):
    signal_stages(p, signal.SIGSTOP, names)


def resume(p, names=("wroute", "wdeliver")):
    signal_stages(p, signal.SIGCONT, names)


def smtp_source(p, count, sessions, sender, rcpt):
    """Postfix's smtp-source, started: `count` messages of 4 KiB over `sessions`
    connections, each sending its messages back to back."""
    return subprocess.Popen(["smtp-source", "-d", "-s", str(sessions), "-l", "4096", "-m", str(count), "-f", sender,
                             "-t", rcpt, "-M", "client.example", f"127.0.0.1:{p.port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(procs):
    for proc in procs:
        out, _ = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise RuntimeError(f"smtp-source failed: {out[-500:]}")


def load(p, flood, over_quota, legit_source="127.0.0.1", flood_sender=FLOOD_SENDER, legit_sender=LEGIT_SENDER):
    """Queues the flood, the over-quota mail and the legitimate message (sent
    from legit_source, another loopback address to give it a client of its
    own), in that order, and checks every one was accepted into the queue (a
    listener that refuses part of the load, e.g. a backlog quota, fails here)."""
    before = int(sql(p, "SELECT count(*) FROM messages"))
    share = [flood // len(FLOOD_USERS) + (1 if k < flood % len(FLOOD_USERS) else 0) for k in range(len(FLOOD_USERS))]
    finish([smtp_source(p, n, 1, flood_sender, f"{user}@{p.domain}") for user, n in zip(FLOOD_USERS, share) if n])
    if over_quota:
        finish([smtp_source(p, over_quota, 5, OVER_QUOTA_SENDER, f"{FULL_USER}@{p.domain}")])
    with smtplib.SMTP("127.0.0.1", p.port, timeout=60, source_address=(legit_source, 0)) as s:
        s.sendmail(legit_sender, [f"{LEGIT_USER}@{p.domain}"],
                   "Subject: legitimate\r\nMessage-ID: <legit@example.org>\r\n\r\nHello.\r\n")
    queued = int(sql(p, "SELECT count(*) FROM messages")) - before
    if queued != flood + over_quota + 1:
        raise RuntimeError(f"{queued} of {flood + over_quota + 1} messages queued: the listener refused some "
                           f"(raise its limits for this load); its log:\n{p.log('wsmtp')[-2000:]}")


def legit_arrival(p, start, timeout):
    """Seconds from `start` (time.time()) until the legitimate message's file is
    in its Maildir's new/ (the file's ctime: the rename into new/ sets it)."""
    new = os.path.join(p.maildir(LEGIT_USER), "new")
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with os.scandir(new) as entries:
                for e in entries:
                    return e.stat(follow_symlinks=False).st_ctime - start
        except FileNotFoundError:
            pass
        time.sleep(0.005)
    raise AssertionError(f"the legitimate message was not in {new} after {timeout}s")


def undelivered(p, sender):
    return int(sql(p, f"SELECT count(*) FROM messages WHERE envelope_from = '{sender}' AND state <> 5"))


def wait_flood_drained(p, timeout, flood_sender=FLOOD_SENDER):
    wait_until(lambda: undelivered(p, flood_sender) == 0, timeout, interval=0.5, what="the flood to drain")


# Where the legitimate message stood in each stage's order, read from the
# messages' own timestamps: route_vtime (the router's claim order), routed_at
# (for fresh mail also the deliverer's claim order before issue 16: routing sets
# next_attempt_at to the same now()), delivering_at (the last claim for
# delivery) and done_at / final_at. "before" counts are of flood messages (or deliveries)
# ahead of the legitimate one; *_s are seconds since the epoch.
_ORDER_SQL = """
WITH l AS (SELECT m.*, d.final_at FROM messages m JOIN deliveries d ON d.message_id = m.id
           WHERE m.envelope_from = '{legit}'),
f AS (SELECT m.*, d.final_at FROM messages m JOIN deliveries d ON d.message_id = m.id
      WHERE m.envelope_from = '{flood}'),
q AS (SELECT m.* FROM messages m WHERE m.envelope_from = '{over_quota}')
SELECT json_build_object(
  'flood', (SELECT count(*) FROM f),
  'flood_final', (SELECT count(*) FROM f WHERE final_at IS NOT NULL),
  'over_quota', (SELECT count(*) FROM q),
  'legit_vtime_ms', (SELECT route_vtime FROM l),
  'legit_received_s', (SELECT extract(epoch FROM received_at) FROM l),
  'legit_routed_s', (SELECT extract(epoch FROM routed_at) FROM l),
  'legit_claimed_s', (SELECT extract(epoch FROM delivering_at) FROM l),
  'legit_done_s', (SELECT extract(epoch FROM done_at) FROM l),
  'legit_final_s', (SELECT extract(epoch FROM final_at) FROM l),
  'flood_first_routed_s', (SELECT extract(epoch FROM min(routed_at)) FROM f),
  'flood_last_routed_s', (SELECT extract(epoch FROM max(routed_at)) FROM f),
  'flood_last_final_s', (SELECT extract(epoch FROM max(final_at)) FROM f),
  'flood_vtime_min_ms', (SELECT min(route_vtime) FROM f),
  'flood_vtime_max_ms', (SELECT max(route_vtime) FROM f),
  'over_quota_vtime_min_ms', (SELECT min(route_vtime) FROM q),
  'over_quota_vtime_max_ms', (SELECT max(route_vtime) FROM q),
  'flood_vtime_before', (SELECT count(*) FROM f, l WHERE (f.route_vtime, f.id) < (l.route_vtime, l.id)),
  'over_quota_vtime_before', (SELECT count(*) FROM q, l WHERE (q.route_vtime, q.id) < (l.route_vtime, l.id)),
  'flood_routed_before', (SELECT count(*) FROM f, l WHERE f.routed_at < l.routed_at),
  'over_quota_routed_before', (SELECT count(*) FROM q, l WHERE q.routed_at < l.routed_at),
  'flood_claimed_before', (SELECT count(*) FROM f, l WHERE f.delivering_at < l.delivering_at),
  'over_quota_claimed_before', (SELECT count(*) FROM q, l WHERE q.delivering_at < l.delivering_at),
  'over_quota_first_claimed_s', (SELECT extract(epoch FROM min(delivering_at)) FROM q),
  'over_quota_last_claimed_s', (SELECT extract(epoch FROM max(delivering_at)) FROM q),
  'over_quota_attempted', (SELECT count(*) FROM q WHERE delivering_at IS NOT NULL),
  'flood_final_before', (SELECT count(*) FROM f, l WHERE f.final_at < l.final_at),
  'now_ms', (extract(epoch FROM clock_timestamp()) * 1000)::bigint)
"""


def order_report(p, flood_sender=FLOOD_SENDER, legit_sender=LEGIT_SENDER):
    return json.loads(sql(p, _ORDER_SQL.format(flood=flood_sender, legit=legit_sender, over_quota=OVER_QUOTA_SENDER)))


def fairness_clocks(p):
    """The router's virtual clocks (route_fairness: sender and client keys), in
    ms since the epoch; empty if a later schema keeps them elsewhere."""
    try:
        return json.loads(sql(p, "SELECT COALESCE(json_object_agg(fair_key, next_vtime), '{}') FROM route_fairness"))
    except subprocess.CalledProcessError:
        return {}

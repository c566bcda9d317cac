"""Maildir delivery under SIGKILL: 1,000 messages x 5 recipients = 5,000
deliveries are queued first, then two wdeliver workers drain them while one is
SIGKILLed and restarted every few hundred milliseconds. Afterwards each message
is in each recipient's Maildir exactly once and complete (no partial file ever
reaches new/), and the queue is DONE. Separate from test_crash.py, which kills
the router and the deliverer while mail is still arriving. Bounded: ~2 minutes.
"""
import os
import random
import signal
import time

import pytest
from deliver_harness import Pipeline, queue_counts, set_section, wait_until

MESSAGES = 1000
USERS = ("c0", "c1", "c2", "c3", "c4")
TRAILER = "-- end of message --"
EXPECTED = {(f"k-{i:05d}", u) for i in range(MESSAGES) for u in USERS}


@pytest.fixture(scope="module")
def run():
    """Queues every message, then drains it with wdeliver being SIGKILLed; returns
    the kills, each (subject, user) copy count and the partial files."""
    rng = random.Random(int(os.environ.get("WSMTP_CRASH_SEED", "3")))
    with Pipeline(lease_time="2s", queue_extra="max_expired_claims = 1000\n") as p:
        set_section(p, "deliver", transports="maildir", retry_base="1s", batch_size="20")
        p.add_domain()
        for u in USERS:
            p.add_mailbox(u)
        for name in ("wsmtp", "wroute", "wreaper"):
            p.start(name)
        with p.smtp() as s:
            for i in range(MESSAGES):
                body = f"Subject: k-{i:05d}\r\n\r\n" + ("line " * 16 + "\r\n") * (i % 40) + TRAILER + "\r\n"
                s.sendmail("s@client.example", [f"{u}@{p.domain}" for u in USERS], body)
        wait_until(lambda: queue_counts(p)["ROUTED"] == MESSAGES, 120, interval=0.3, what="all routed")

        victims = [p.start("wdeliver"), p.start("wdeliver")]
        kills = 0
        deadline = time.time() + 150
        while queue_counts(p)["DONE"] < MESSAGES and time.time() < deadline:
            time.sleep(rng.uniform(0.1, 0.5))
            victim = victims.pop(rng.randrange(len(victims)))
            if victim.poll() is None:
                os.killpg(victim.pid, signal.SIGKILL)  # supervisor and its workers at once
                victim.wait(timeout=10)
                kills += 1
            victims.append(p.start("wdeliver"))
        wait_until(lambda: queue_counts(p)["DONE"] == MESSAGES, 60, interval=0.5, what="queue drained")

        copies, partial = {}, []
        for u in USERS:
            for path in p.maildir_files(u):
                with open(path) as f:
                    text = f.read()
                subject = text.split("Subject: ", 1)[1].split("\n", 1)[0]
                copies[(subject, u)] = copies.get((subject, u), 0) + 1
                if not text.endswith(TRAILER + "\n"):
                    partial.append(path)
        log = p.log("wdeliver")
        print(f"deliver crash test: kills={kills} files={sum(copies.values())} partial={len(partial)} "
              f"reclaimed={log.count('re-claimed')} already_present={log.count('already in')}")
        yield kills, copies, partial


def test_the_run_killed_often_enough_to_test_anything(run):
    kills = run[0]
    assert kills >= 5, f"only {kills} kills: the run was too short to test anything"


def test_no_delivery_is_lost(run):
    lost = EXPECTED - set(run[1])
    assert not lost, sorted(lost)[:10]


def test_no_delivery_is_duplicated(run):
    dups = {k: n for k, n in run[1].items() if n > 1}
    assert not dups, list(dups.items())[:10]


def test_no_partial_file_reaches_new(run):
    partial = run[2]
    assert not partial, partial[:5]


def test_exactly_the_expected_copies(run):
    assert set(run[1]) == EXPECTED

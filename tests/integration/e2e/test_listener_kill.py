#!/usr/bin/env python3
"""SIGKILL wsmtp in the middle of many concurrent DATA transfers (small
messages stored in one transaction, and big ones streamed in chunks), then
check the contract: every message that got 250 is in state >= 1, and every
message that did not is never routed (it stays in state 0 until the reaper
deletes it). The only exception the protocol allows is a message whose final
dot had been sent and whose commit won the race with the kill (RFC 5321 §6.1:
a duplicate, never a loss); those are counted and bounded by the number of
clients. Then SIGTERM with transfers in flight must not leave any such message.
Bounded: 8 clients, a few hundred messages, 2 kills.
"""
import os
import random
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "harness"))
from pipeline import Pipeline, wait_until  # noqa: E402
from listener_harness import RawSmtp, sql  # noqa: E402

CLIENTS = 8


class Client(threading.Thread):
    def __init__(self, p, index, rng, stop, round_no):
        super().__init__(daemon=True)
        self.p, self.index, self.rng, self.stop, self.round_no = p, index, rng, stop, round_no
        self.accepted = set()   # tokens that got 250
        self.dot_sent = set()   # tokens whose final dot went out without a 250 back
        self.sent = set()       # every token ever started

    def run(self):
        n = 0
        while not self.stop.is_set():
            try:
                c = RawSmtp(self.p.port, timeout=15)
                c.reply()
                c.cmd("EHLO kill.example")
                while not self.stop.is_set():
                    n += 1
                    token = f"k{self.round_no}{self.index}-{n}"
                    self.sent.add(token)
                    c.send(f"MAIL FROM:<s@client.example>\r\nRCPT TO:<alice@{self.p.domain}>\r\nDATA\r\n")
                    if [r[0] for r in c.replies(3)] != [250, 250, 354]:
                        break
                    big = self.rng.random() < 0.5
                    lines = 4000 if big else 20
                    body = f"Subject: {token}\r\n\r\n" + (("x" * 76 + "\r\n") * lines)
                    c.send(body)
                    self.dot_sent.add(token)
                    c.send(".\r\n")
                    code, _ = c.reply()
                    if code == 250:
                        self.accepted.add(token)
                        self.dot_sent.discard(token)
            except (OSError, ConnectionError):
                time.sleep(0.05)
            finally:
                try:
                    c.close()
                except Exception:
                    pass


def token_states(p):
    rows = sql(p, "SELECT substring(encode(b.data, 'escape') from 'Subject: (k[0-9]+-[0-9]+)'), m.state "
                  "FROM messages m JOIN body_chunks b ON b.message_id = m.id AND b.seq = 0")
    return {r[0]: int(r[1]) for r in rows if r[0]}


def run_round(p, rng, how, round_no):
    stop = threading.Event()
    clients = [Client(p, i, rng, stop, round_no) for i in range(CLIENTS)]
    for c in clients:
        c.start()
    time.sleep(rng.uniform(2.0, 3.0))
    wsmtp = p.procs["wsmtp"][-1]
    wsmtp.send_signal(how)
    wsmtp.wait(timeout=60)
    stop.set()
    for c in clients:
        c.join(timeout=30)
    accepted = set().union(*(c.accepted for c in clients))
    racing = set().union(*(c.dot_sent for c in clients))
    return accepted, racing


def main():
    rng = random.Random(int(os.environ.get("WSMTP_KILL_SEED", "3")))
    with Pipeline(listener_extra="shutdown_grace = 3s\nmax_connection_rate = 0\n") as p:
        p.add_domain()
        p.add_mailbox("alice")
        p.start("wsmtp")
        all_accepted = set()
        for round_no, how in enumerate((signal.SIGKILL, signal.SIGKILL, signal.SIGTERM)):
            accepted, racing = run_round(p, rng, how, round_no)
            states = token_states(p)
            lost = [t for t in accepted if states.get(t, 0) < 1]
            unexpected = [t for t, s in states.items() if s >= 1 and t not in accepted and t not in all_accepted]
            not_racing = [t for t in unexpected if t not in racing]
            print(f"round {round_no} ({signal.Signals(how).name}): accepted={len(accepted)} "
                  f"stored={len(states)} state0={sum(1 for s in states.values() if s == 0)} "
                  f"committed-without-250={len(unexpected)}")
            assert len(accepted) > 10, "too few messages got through to test anything"
            assert not lost, f"got 250 but not in state >= 1: {lost[:10]}"
            assert not not_racing, f"in state >= 1 without 250 and without a final dot: {not_racing[:10]}"
            if how == signal.SIGKILL:
                assert len(unexpected) <= CLIENTS, f"too many commit/kill races: {unexpected}"
            else:
                # Graceful shutdown: every commit that ran was answered.
                assert not unexpected, f"SIGTERM left committed messages without 250: {unexpected}"
                assert "shutting down" in p.log("wsmtp")
            all_accepted |= accepted | set(unexpected)
            p.start("wsmtp")
        # Aborted receipts (state 0) are never routed: run the router and the
        # reaper and check that no state-0 message moves forward.
        zero = {t for t, s in token_states(p).items() if s == 0}
        p.start("wroute")
        p.start("wreaper")
        wait_until(lambda: all(s != 1 for s in token_states(p).values()), 60, interval=0.5,
                   what="router to take every received message")
        time.sleep(2)
        after = token_states(p)
        moved = [t for t in zero if after.get(t, 0) >= 1]
        print(f"state-0 leftovers: {len(zero)}, routed among them: {len(moved)}")
        assert not moved, f"aborted messages were routed: {moved[:10]}"
        assert all(after.get(t, 0) >= 2 for t in all_accepted), "an accepted message was not routed"
        print("listener kill test: passed")


if __name__ == "__main__":
    main()

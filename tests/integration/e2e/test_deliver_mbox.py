"""mbox spools under concurrency: three wdeliver workers append to the same two
spools while a reader (Python's mailbox module, fcntl + dot-lock like a MUA)
repeatedly holds the lock; afterwards mailbox.mbox parses each spool into
exactly the messages sent to it, bodies intact once the mboxrd quoting of
"From " lines is undone. Bounded: 240 messages, a few minutes at most.
"""
import mailbox
import os
import threading
import time

import pytest
from deliver_harness import (Pipeline, add_mbox_mailbox, queue_counts, set_section, start_workers, unquote_mboxrd,
                             wait_until)

MESSAGES = 240
WORKERS = 3
USERS = ("ann", "ben")


def body_for(i):
    # Lines that mboxrd must quote, plus one that looks quoted already.
    return (f"From the desk of sender {i}\r\n>From an old quote\r\nplain line {i}\r\n"
            + "".join(f"filler {i} {k} " + "y" * 60 + "\r\n" for k in range(i % 7)))


@pytest.fixture(scope="module")
def run():
    """Every message delivered while a reader keeps taking the spools' locks;
    returns the pipeline, the spools, what was sent to each and the reader's lock holds."""
    with Pipeline(lease_time="10s") as p:
        set_section(p, "deliver", transports="maildir, mbox", retry_base="1s", batch_size="5",
                    mbox_lock_timeout="20s")
        spool_dir = os.path.join(p.root, "spool")
        os.makedirs(spool_dir)
        p.add_domain()
        spools = {u: os.path.join(spool_dir, u) for u in USERS}
        for u in USERS:
            add_mbox_mailbox(p, u, spools[u])
        for name in ("wsmtp", "wroute", "wreaper"):
            p.start(name)
        start_workers(p, WORKERS)

        stop_reader = threading.Event()
        reader_holds = []

        def reader():
            # A MUA that locks the spool (fcntl, then <spool>.lock) for a while, again and again.
            while not stop_reader.is_set():
                for u in USERS:
                    if not os.path.exists(spools[u]):
                        continue
                    box = mailbox.mbox(spools[u], create=False)
                    try:
                        box.lock()
                    except mailbox.ExternalClashError:
                        box.close()
                        continue
                    reader_holds.append(u)
                    time.sleep(0.3)
                    box.unlock()
                    box.close()
                time.sleep(0.2)

        rt = threading.Thread(target=reader)
        rt.start()
        sent = {u: {} for u in USERS}
        try:
            with p.smtp() as s:
                for i in range(MESSAGES):
                    u = USERS[i % 2]
                    subject = f"mbox-{i:04d}"
                    body = body_for(i)
                    s.sendmail("s@client.example", [f"{u}@{p.domain}"],
                               f"Subject: {subject}\r\nMessage-ID: <{subject}@t>\r\n\r\n{body}")
                    sent[u][subject] = body.replace("\r\n", "\n")
            wait_until(lambda: queue_counts(p)["DONE"] == MESSAGES, 150, interval=0.5,
                       what="all messages DONE")
        finally:
            stop_reader.set()
            rt.join()
        log = p.log("wdeliver")
        print(f"mbox test: messages={MESSAGES} workers={WORKERS} reader_lock_holds={len(reader_holds)} "
              f"deferred={log.count('deferred:')}")
        yield p, spools, sent, reader_holds


def test_the_reader_got_the_lock(run):
    reader_holds = run[3]
    assert reader_holds, "the reader never got the lock"


@pytest.mark.parametrize("u", USERS)
def test_spool_parses_into_exactly_the_messages_sent_with_bodies_intact(run, u):
    p, spools, sent = run[:3]
    assert not os.path.exists(spools[u] + ".lock"), "dot-lock left behind"
    box = mailbox.mbox(spools[u], create=False)
    got = {}
    for msg in box:
        subject = msg["Subject"]
        assert subject not in got, f"duplicate {subject} in {u}'s spool"
        assert msg["Return-Path"] == "<s@client.example>", msg["Return-Path"]
        assert msg["Delivered-To"] == f"{u}@{p.domain}", msg["Delivered-To"]
        payload = msg.get_payload()
        # The separator's blank line belongs to the spool, not to the message.
        got[subject] = unquote_mboxrd(payload[:-1] if payload.endswith("\n\n") else payload)
    assert set(got) == set(sent[u]), f"{u}: missing {set(sent[u]) - set(got)}, stray {set(got) - set(sent[u])}"
    bad = [s for s in got if got[s] != sent[u][s]]
    assert not bad, f"{u}: bodies differ for {bad[:5]}: {got[bad[0]]!r} vs {sent[u][bad[0]]!r}"


@pytest.mark.parametrize("u", USERS)
def test_from_lines_are_quoted_in_the_spool(run, u):
    spools, sent = run[1], run[2]
    with open(spools[u], "rb") as f:
        raw = f.read()
    assert raw.count(b"\n>From the desk of sender") == len(sent[u]), "unquoted From line in the spool"

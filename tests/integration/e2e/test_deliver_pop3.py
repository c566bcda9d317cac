"""The POP platform end to end: mail accepted by wsmtp and written by wdeliver
into Maildirs is read back by a real, throwaway Dovecot POP3 server with
Python's poplib. Every accepted message is retrieved exactly once, byte for
byte as sent (8-bit bytes, leading dots and "From " lines included), preceded
only by the trace headers WSMTP prepends (Return-Path, Delivered-To, Received).
Bounded: 120 messages to 4 mailboxes.
"""
import poplib
import random
import re

import pytest
from deliver_dovecot import PASSWORD, Dovecot
from deliver_harness import Pipeline, queue_counts, wait_until

MESSAGES = 120
USERS = ("u0", "u1", "u2", "u3")
TRACE = re.compile(rb"\A((Return-Path|Delivered-To|Received): [^\r\n]*\r\n([ \t][^\r\n]*\r\n)*)+\Z")


def message(i, rng):
    lines = [f"Subject: pop-{i:04d}", f"Message-ID: <pop-{i:04d}@t>", "MIME-Version: 1.0",
             "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit", ""]
    for k in range(rng.randint(1, 40)):
        lines.append(rng.choice([".leading dot", "..two dots", "From a line", "caf\u00e9 \u00fcber",
                                 "x" * rng.randint(0, 900), "", "tab\there"]))
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


@pytest.fixture(scope="module")
def env(failure_logs):
    """Every message delivered into the Maildirs, then handed to a Dovecot POP3 server."""
    rng = random.Random(5)
    with Pipeline(lease_time="10s") as p:
        p.add_domain()
        for u in USERS:
            p.add_mailbox(u)
        p.start_all()
        sent = {u: {} for u in USERS}
        with p.smtp() as s:
            for i in range(MESSAGES):
                u = USERS[i % len(USERS)]
                body = message(i, rng)
                s.sendmail("s@client.example", [f"{u}@{p.domain}"], body, mail_options=["BODY=8BITMIME"])
                sent[u][f"pop-{i:04d}"] = body
        wait_until(lambda: queue_counts(p)["DONE"] == MESSAGES, 90, interval=0.3, what="all delivered")
        dovecot = Dovecot(p.root, p.mail_root)
        failure_logs.append(("dovecot log", lambda: dovecot.read_log()[-3000:]))
        try:
            for u in USERS:
                dovecot.hand_over(u)
            yield p, dovecot, sent
        finally:
            dovecot.stop()


@pytest.mark.parametrize("user", USERS)
def test_each_message_retrieved_once_byte_exact_after_the_trace_headers(env, user):
    p, dovecot, sent = env
    expected = sent[user]
    pop = poplib.POP3("127.0.0.1", dovecot.pop3_port, timeout=30)
    pop.user(user)
    pop.pass_(PASSWORD)
    count, _ = pop.stat()
    got = {}
    for n in range(1, count + 1):
        _, lines, _ = pop.retr(n)  # poplib removes the POP3 dot-stuffing
        raw = b"".join(line + b"\r\n" for line in lines)
        subject = re.search(rb"\r\nSubject: (\S+)\r\n", raw).group(1).decode()
        assert subject not in got, f"{user}: {subject} retrieved twice"
        got[subject] = raw
        pop.dele(n)
    pop.quit()
    assert set(got) == set(expected), f"{user}: missing {set(expected) - set(got)}, stray {set(got) - set(expected)}"
    for subject, raw in got.items():
        body = expected[subject]
        assert raw.endswith(body), f"{user} {subject}: content differs"
        prefix = raw[: len(raw) - len(body)]
        assert TRACE.match(prefix), f"{user} {subject}: unexpected prefix {prefix[:300]!r}"
        assert prefix.startswith(b"Return-Path: <s@client.example>\r\nDelivered-To: " + f"{user}@{p.domain}".encode())
    again = poplib.POP3("127.0.0.1", dovecot.pop3_port, timeout=30)
    again.user(user)
    again.pass_(PASSWORD)
    assert again.stat()[0] == 0, "messages still there after DELE"
    again.quit()

"""End-to-end: the four daemons on a throwaway PostgreSQL, mail sent with
Python's smtplib to two mailboxes and one alias, read back from the Maildirs.

Asserts each message lands exactly once in the right Maildir with the trace
headers and the exact body (a dot-stuffed line, a lone-dot line, 8-bit text),
that an unknown local user is refused at RCPT with 550 5.1.1, and that
`wsmtpctl queue` then shows every message in state 5 (DONE). The daemons
reach PostgreSQL over its Unix socket, as a single-host deployment does
(deploy/examples/wsmtp.conf); the other tests use TCP.
"""
import smtplib

import pytest
from pipeline import Pipeline, wait_until

SENDER = "sender@client.example"


def message(subject, body_lines, extra_headers=()):
    lines = [f"From: {SENDER}", "To: someone", f"Subject: {subject}",
             f"Message-ID: <{subject}@client.example>", *extra_headers, "", *body_lines]
    return "\r\n".join(lines) + "\r\n"


def read(path):
    with open(path, "rb") as f:
        return f.read()


def check_delivered(p, user, original, subject):
    files = [f for f in p.maildir_files(user) if f"Subject: {subject}".encode() in read(f)]
    assert len(files) == 1, f"{user}: expected exactly one copy of {subject}, found {len(files)}"
    data = read(files[0])
    expected_tail = original.replace("\r\n", "\n").encode()
    head = f"Return-Path: <{SENDER}>\nDelivered-To: {user}@{p.domain}\n".encode()
    assert data.startswith(head), f"{user}/{subject}: trace headers wrong: {data[:200]!r}"
    assert data.endswith(expected_tail), f"{user}/{subject}: body differs:\n{data!r}\nexpected tail\n{expected_tail!r}"
    between = data[len(head):len(data) - len(expected_tail)]
    assert between.startswith(b"Received: from "), f"{user}/{subject}: no Received header: {between!r}"
    assert b"by mx.example.test" in between, between
    assert b"\r" not in data, f"{user}/{subject}: Maildir files use LF line ends"


PLAIN = message("dots", ["first line", ".leading dot must survive", ".", "..two dots", "last line"])
EIGHT_BIT = message("eightbit", ["Grüße aus Köln — ½ € ✓", "naïve café"],
                    ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8",
                     "Content-Transfer-Encoding: 8bit"])
ALIAS_MSG = message("alias", ["to the whole team"])


@pytest.fixture(scope="module")
def p():
    with Pipeline(db_socket=True) as p:
        p.add_domain()
        p.add_mailbox("alice")
        p.add_mailbox("bob")
        p.add_alias("team", f"alice@{p.domain}", f"Bob@{p.domain}")
        p.start_all()
        yield p


@pytest.fixture(scope="module")
def session(p):
    """One SMTP session: its EHLO, three messages, an unknown user, and a NOOP after the refusal."""
    seen = {}
    with p.smtp() as s:
        s.ehlo("client.example")
        seen["extensions"] = {e: s.has_extn(e) for e in ("8bitmime", "pipelining")}
        s.sendmail(SENDER, [f"alice@{p.domain}"], PLAIN)
        s.sendmail(SENDER, [f"bob@{p.domain}"], EIGHT_BIT.encode("utf-8"), mail_options=["BODY=8BITMIME"])
        s.sendmail(SENDER, [f"team@{p.domain}"], ALIAS_MSG)
        try:
            s.sendmail(SENDER, [f"nobody@{p.domain}"], message("unknown", ["x"]))
            seen["unknown"] = None
        except smtplib.SMTPRecipientsRefused as e:
            seen["unknown"] = e.recipients[f"nobody@{p.domain}"]
        seen["noop"] = s.noop()[0]
    return seen


@pytest.fixture(scope="module")
def delivered(p, session):
    wait_until(lambda: len(p.maildir_files("alice")) >= 2 and len(p.maildir_files("bob")) >= 2, 30,
               what="delivery to alice and bob")
    return p


def test_ehlo_offers_8bitmime_and_pipelining(session):
    assert session["extensions"]["8bitmime"] and session["extensions"]["pipelining"]


def test_unknown_local_user_refused_at_rcpt_with_5_1_1(session):
    assert session["unknown"] is not None, "unknown local user was accepted"
    code, text = session["unknown"]
    assert code == 550 and text.startswith(b"5.1.1"), (code, text)


def test_session_goes_on_after_a_refusal(session):
    assert session["noop"] == 250


def test_each_copy_lands_once_with_trace_headers_and_exact_body(delivered):
    p = delivered
    check_delivered(p, "alice", PLAIN, "dots")
    check_delivered(p, "bob", EIGHT_BIT, "eightbit")
    check_delivered(p, "alice", ALIAS_MSG, "alias")
    check_delivered(p, "bob", ALIAS_MSG, "alias")
    assert len(p.maildir_files("alice")) == 2 and len(p.maildir_files("bob")) == 2


def test_queue_drains_to_done(delivered):
    p = delivered
    wait_until(lambda: p.queue()["DONE"]["count"] == 3, 30, what="state 5 for all three messages")
    q = p.queue()
    for name in ("RECEIVING", "RECEIVED", "ROUTING", "ROUTED", "DELIVERING"):
        assert q[name]["count"] == 0, (name, q[name])
    text = p.ctl("queue").stdout
    assert "5 DONE" in text and " 3 " in text, text


def test_daemons_reach_postgresql_over_the_unix_socket(delivered):
    # The daemons' sessions came over the socket (no client address); this
    # check's own psql session comes over TCP.
    socket_sessions = delivered.pg.psql("SELECT count(*) FROM pg_stat_activity WHERE datname = 'wsmtp' "
                                        "AND backend_type = 'client backend' AND client_addr IS NULL",
                                        dbname="wsmtp")
    assert int(socket_sessions) >= 3, socket_sessions


def test_every_program_logs_the_queue_id(delivered):
    for prog, word in (("wsmtp", "accepted"), ("wroute", "ROUTING->ROUTED"), ("wdeliver", "delivered rcpt=")):
        assert word in delivered.log(prog), f"{prog} log lacks '{word}'"

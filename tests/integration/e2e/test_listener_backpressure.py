"""Backpressure at the door (issue 16): a sender whose undelivered backlog is
at its quota gets 451 4.7.1 at MAIL, keyed as the listener decides.

Small quotas ([listener] backlog_quota_*), the watch sampling every second,
127.0.0.1 limit-exempt (so trusted) and 127.0.0.2 and 127.0.0.3 ordinary
clients. Only the listener runs at first, so nothing is delivered:
- a flooding sender domain is refused once over its quota, and every message
  answered 250 before is in the queue; another domain from another client is
  still accepted;
- the client key: new domains from the flooding client are refused once the
  client is over its quota;
- an authenticated user is keyed by user alone: over its quota it is refused
  from any client, another user is not;
- the limit-exempt client is held to the trusted quota;
- `wsmtpctl queue` shows the top backlogs;
- once the router and deliverer drain the queue, MAIL is accepted again.
Bounded: a few dozen small messages.
"""
import json
import re
import smtplib
import ssl
import time

import pytest
from listener_harness import add_auth_user, make_cert, sql
from pipeline import Pipeline, wait_until

DOMAIN_QUOTA, CLIENT_QUOTA, USER_QUOTA, TRUSTED_QUOTA = 4, 10, 3, 5
# The listener reads the totals every second: paced so a sender goes past its
# quota by a few messages at most, as the README says.
PACE = 0.25
MAX_TRIES = 40


@pytest.fixture(scope="module")
def p(tmp_path_factory):
    cert, key = make_cert(str(tmp_path_factory.mktemp("wsmtp-backpressure-")))
    extra = (f"tls_cert_file = {cert}\ntls_key_file = {key}\n"
             f"backlog_quota_sender_domain = {DOMAIN_QUOTA}\nbacklog_quota_client = {CLIENT_QUOTA}\n"
             f"backlog_quota_user = {USER_QUOTA}\nbacklog_quota_trusted = {TRUSTED_QUOTA}\n"
             "backlog_check_interval = 1s\nlimit_exceptions = 127.0.0.1/32\nrecipient_cache_time = 0\n")
    with Pipeline(domain="demo.test", listener_extra=extra) as p:
        p.add_domain()
        p.add_mailbox("alice")
        add_auth_user(p, "carol", "carol-pw")
        add_auth_user(p, "dave", "dave-pw")
        p.start("wsmtp")
        yield p


def connect(p, source="127.0.0.1", user=None):
    s = smtplib.SMTP("127.0.0.1", p.port, timeout=30, source_address=(source, 0))
    s.ehlo("client.test")
    if user:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        s.starttls(context=context)
        s.ehlo("client.test")
        s.login(user, f"{user}-pw")
    return s


def send(s, sender):
    """One message on an open session: (code, text, queue id or None)."""
    code, text = s.mail(sender)
    if code != 250:
        s.rset()
        return code, text.decode(), None
    assert s.rcpt("alice@demo.test")[0] == 250
    code, text = s.data(f"Subject: from {sender}\r\n\r\nhello\r\n")
    assert code == 250, (code, text)
    return code, text.decode(), re.search(r"queued as (\S+)", text.decode()).group(1)


def until_refused(s, senders):
    """Sends from senders in turn until one MAIL is refused; (accepted ids, refusal)."""
    accepted = []
    for i in range(MAX_TRIES):
        code, text, qid = send(s, senders[i % len(senders)])
        if qid is None:
            return accepted, (code, text)
        accepted.append(qid)
        time.sleep(PACE)
    return accepted, None


def queued_ids(p, where):
    return sorted(int(r[0]) for r in sql(p, f"SELECT id FROM messages WHERE {where}"))


@pytest.fixture(scope="module")
def flood(p):
    with connect(p, "127.0.0.2") as s:
        return until_refused(s, ["bulk@Spam.test"])


def test_a_flooding_sender_domain_gets_451_471_once_over_its_quota(p, flood):
    accepted, refused = flood
    assert refused is not None, f"no refusal after {len(accepted)} messages"
    assert refused[0] == 451 and refused[1].startswith("4.7.1"), refused
    assert "Too much mail from spam.test is waiting for delivery" in refused[1]
    assert DOMAIN_QUOTA <= len(accepted) <= DOMAIN_QUOTA + 4 / PACE, accepted
    assert "MAIL refused from=<bulk@Spam.test>: backlog of d:spam.test" in p.log("wsmtp")


def test_every_message_answered_250_is_in_the_queue(p, flood):
    accepted, _ = flood
    assert queued_ids(p, "envelope_from = 'bulk@Spam.test'") == sorted(int(q) for q in accepted)


def test_another_domain_from_another_client_is_accepted(p, flood):
    with connect(p, "127.0.0.3") as s:
        assert send(s, "friend@ok.test")[2] is not None
        # The domain is over quota whichever client sends it.
        code, text, _ = send(s, "other@spam.test")
        assert (code, text[:5]) == (451, "4.7.1")


@pytest.fixture(scope="module")
def client_over(p, flood):
    with connect(p, "127.0.0.2") as s:
        return until_refused(s, [f"user@d{i}.test" for i in range(10)])


def test_new_domains_from_a_client_over_its_quota_are_refused(p, client_over):
    accepted, refused = client_over
    assert refused is not None and refused[0] == 451, (accepted, refused)
    assert "Too much mail from 127.0.0.2 is waiting" in refused[1]
    total = int(sql(p, "SELECT count(*) FROM messages WHERE client_addr = '127.0.0.2'")[0][0])
    assert total >= CLIENT_QUOTA


@pytest.fixture(scope="module")
def carol_over(p, client_over):
    # From the client that is over its own quota: a user is keyed by user alone.
    with connect(p, "127.0.0.2", user="carol") as s:
        return until_refused(s, ["carol@spam.test"])


def test_an_authenticated_user_is_keyed_by_user(p, carol_over):
    accepted, refused = carol_over
    assert len(accepted) >= USER_QUOTA, accepted
    assert refused is not None and refused[0] == 451 and "user carol" in refused[1], refused
    keys = sql(p, f"SELECT DISTINCT array_to_string(backlog_keys, ',') FROM messages WHERE id = {accepted[0]}")
    assert keys == [["u:carol"]]


def test_another_user_is_accepted(p, carol_over):
    with connect(p, "127.0.0.2", user="dave") as s:
        assert send(s, "dave@spam.test")[2] is not None


@pytest.fixture(scope="module")
def trusted_over(p, carol_over):
    with connect(p, "127.0.0.1") as s:
        return until_refused(s, ["app@spam.test", "app@d1.test"])


def test_a_limit_exempt_client_has_the_trusted_quota(p, trusted_over):
    accepted, refused = trusted_over
    # spam.test is far over its own quota: not counted for a trusted client.
    assert len(accepted) >= TRUSTED_QUOTA, accepted
    assert refused is not None and "Too much mail from 127.0.0.1" in refused[1], refused


def test_wsmtpctl_queue_shows_the_top_backlogs(p, trusted_over):
    top = json.loads(p.ctl("queue", "--json").stdout)["top_backlogs"]
    entries = {(e["kind"], e["key"]): e["count"] for e in top}
    waiting = queued_ids(p, "state BETWEEN 1 AND 4 AND backlog_keys && '{d:spam.test}'")
    assert entries[("sender domain", "spam.test")] == len(waiting)
    assert ("client", "127.0.0.2") in entries and ("user", "carol") in entries and ("client", "127.0.0.1") in entries
    counts = [e["count"] for e in top]
    assert counts == sorted(counts, reverse=True)
    text = p.ctl("queue").stdout
    assert "top backlogs" in text and "sender domain" in text and "spam.test" in text


def test_mail_is_accepted_again_once_the_backlog_is_delivered(p, trusted_over):
    p.start("wroute")
    p.start("wdeliver")
    p.start("wreaper")
    wait_until(lambda: not queued_ids(p, "state BETWEEN 1 AND 4"), 60, interval=0.5, what="queue drained")

    def accepted_again():
        with connect(p, "127.0.0.2") as s:
            return send(s, "bulk@spam.test")[2] is not None

    wait_until(accepted_again, 15, interval=0.5, what="MAIL accepted again")
    with connect(p, "127.0.0.2", user="carol") as s:
        assert send(s, "carol@spam.test")[2] is not None
    # The reaper folded the counters: only what is still waiting is left.
    wait_until(lambda: int(sql(p, "SELECT count(*) FROM backlog_counts WHERE writer <> 0")[0][0]) <= 4, 15,
               interval=0.5, what="counters folded")

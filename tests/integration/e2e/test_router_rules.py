"""End-to-end: the router's rule book through the real daemons. Mail sent over
SMTP to a plus-address, to an unknown address of a domain with a catch-all, to
a mailing list and to a mailbox with a vacation reply; the listener accepts
each at RCPT (lists, catch-alls and plus-addresses count as known), wroute
routes them, wdeliver puts them in the Maildirs. Asserts the Maildir copies,
the list's delivery rows (headers to prepend, envelope sender rewritten to the
list's bounce address, one copy for a member also addressed directly), the
members-only refusal, exactly one RFC 3834 reply per sender, a list member
refused inside the fan-out reported to the list's bounce address (not to the
poster), and an empty list refused to the poster.
"""
import pytest
from pipeline import Pipeline, wait_until
from router_harness import count, sql

SENDER = "friend@client.example"
POST = ("(SELECT id FROM messages m JOIN body_chunks b ON b.message_id = m.id "
        "WHERE position('Subject: listpost' in convert_from(b.data, 'UTF8')) > 0 LIMIT 1)")


def message(to, subject, extra=""):
    return (f"From: {SENDER}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{subject}@client.example>\r\n"
            f"{extra}\r\nbody of {subject}\r\n")


def copies(p, user, subject):
    needle = f"Subject: {subject}".encode()
    return sum(1 for f in p.maildir_files(user) if needle in open(f, "rb").read())


def read_copy(p, user, subject):
    needle = f"Subject: {subject}".encode()
    return next(open(f, "rb").read() for f in p.maildir_files(user) if needle in open(f, "rb").read())


@pytest.fixture(scope="module")
def p():
    """The rule book's data, the daemons, and every message sent (each accepted at RCPT)."""
    with Pipeline() as p:
        d = p.domain
        p.add_domain()
        for user in ("ann", "bo", "pm", "lb"):
            p.add_mailbox(user)
        sql(p, f"INSERT INTO catchalls (domain, target) VALUES ('{d}', 'pm@{d}');"
               f"INSERT INTO lists (address, domain, owner, bounce_address, posting_policy, list_id) "
               f"VALUES ('team@{d}', '{d}', 'bo@{d}', 'team-bounces@{d}', 'anyone', 'team.{d}'),"
               f"       ('closed@{d}', '{d}', 'bo@{d}', 'bo@{d}', 'members', 'closed.{d}');"
               f"INSERT INTO list_members (list_address, member) VALUES ('team@{d}', 'ann@{d}'), ('team@{d}', 'bo@{d}');"
               f"INSERT INTO autoreplies (address, subject, body) VALUES ('ann@{d}', 'Away', 'Back soon.');"
               # Lists whose refusals are reported to lb: one with a member
               # unknown in a local domain without a catch-all, one empty.
               f"INSERT INTO domains (name) VALUES ('other.test');"
               f"INSERT INTO lists (address, domain, owner, bounce_address, posting_policy, list_id) "
               f"VALUES ('staff@{d}', '{d}', 'bo@{d}', 'lb@{d}', 'anyone', 'staff.{d}'),"
               f"       ('empty@{d}', '{d}', 'bo@{d}', 'lb@{d}', 'anyone', 'empty.{d}');"
               f"INSERT INTO list_members (list_address, member) VALUES ('staff@{d}', 'bo@{d}'),"
               f"       ('staff@{d}', 'gone@other.test');")
        p.start_all()

        with p.smtp() as s:
            s.ehlo("client.example")
            s.sendmail(SENDER, [f"ann+news@{d}"], message(f"ann+news@{d}", "plus"))
            s.sendmail(SENDER, [f"whoever@{d}"], message(f"whoever@{d}", "catchall"))
            s.sendmail(SENDER, [f"team@{d}", f"ann@{d}"], message(f"team@{d}, ann@{d}", "listpost"))
            s.sendmail(SENDER, [f"ann@{d}"], message(f"ann@{d}", "vacation1"))
            s.sendmail(SENDER, [f"ann@{d}"], message(f"ann@{d}", "vacation2"))
            s.sendmail(SENDER, [f"closed@{d}"], message(f"closed@{d}", "closed"))
            s.sendmail(SENDER, [f"staff@{d}"], message(f"staff@{d}", "staffpost"))
            s.sendmail(SENDER, [f"empty@{d}"], message(f"empty@{d}", "emptypost"))
        yield p


def test_plus_address_reaches_the_mailbox(p):
    wait_until(lambda: copies(p, "ann", "plus") == 1, 30, what="plus-addressed copy")


def test_unknown_address_reaches_the_catch_all(p):
    wait_until(lambda: copies(p, "pm", "catchall") == 1, 30, what="catch-all copy")


def test_list_post_reaches_each_member_once(p):
    wait_until(lambda: copies(p, "bo", "listpost") == 1 and copies(p, "ann", "listpost") == 1, 30,
               what="list copies")


def test_list_delivery_row_carries_list_headers_and_bounce_address(p):
    d = p.domain
    wait_until(lambda: copies(p, "bo", "listpost") == 1, 30, what="the list copy")
    bo_row = sql(p, f"SELECT envelope_from_override || '|' || prepend_headers FROM deliveries "
                    f"WHERE message_id = {POST} AND recipient = 'bo@{d}'")
    assert bo_row.startswith(f"team-bounces@{d}|List-Id: <team.{d}>"), bo_row
    assert f"X-Loop: team@{d}" in bo_row, bo_row


def test_deliverer_puts_list_headers_on_top_and_bounce_address_in_return_path(p):
    d = p.domain
    wait_until(lambda: copies(p, "bo", "listpost") == 1, 30, what="the list copy")
    bo_copy = read_copy(p, "bo", "listpost")
    assert bo_copy.startswith(f"Return-Path: <team-bounces@{d}>\nDelivered-To: bo@{d}\n".encode()), bo_copy[:200]
    assert f"List-Id: <team.{d}>".encode() in bo_copy.split(b"\nReceived:")[0], bo_copy[:400]


def test_member_addressed_directly_gets_one_plain_copy(p):
    d = p.domain
    wait_until(lambda: copies(p, "ann", "listpost") == 1, 30, what="ann's copy")
    ann_copy = read_copy(p, "ann", "listpost")
    assert b"List-Id:" not in ann_copy and ann_copy.startswith(f"Return-Path: <{SENDER}>".encode()), ann_copy[:200]
    # ann is a member and a direct recipient: one row, the direct (plain) copy.
    ann_rows = sql(p, f"SELECT coalesce(envelope_from_override, 'direct') FROM deliveries "
                      f"WHERE message_id = {POST} AND recipient = 'ann@{d}'")
    assert ann_rows == "direct", ann_rows


def test_members_only_list_refuses_a_non_member(p):
    wait_until(lambda: copies(p, "ann", "vacation2") == 1, 30, what="vacation mail")
    closed = count(p, f"SELECT count(*) FROM deliveries WHERE original_rcpt = 'closed@{p.domain}' "
                      f"AND status = 'bounced' AND last_error LIKE '5.7.2%'")
    assert closed == 1, closed


def test_one_vacation_reply_per_sender_routed_to_the_relay(p):
    wait_until(lambda: copies(p, "ann", "vacation2") == 1, 30, what="vacation mail")
    replies = lambda: count(p, f"SELECT count(*) FROM messages m JOIN recipients r ON r.message_id = m.id "  # noqa: E731
                               f"WHERE m.envelope_from = '' AND r.address = '{SENDER}' "
                               f"AND m.received_by = 'wroute'")
    wait_until(lambda: replies() >= 1, 30, what="the vacation reply")
    assert replies() == 1, f"expected one vacation reply, got {replies()}"
    # The reply was routed to the relay pool like any outbound mail.
    wait_until(lambda: count(p, f"SELECT count(*) FROM deliveries d JOIN messages m ON m.id = d.message_id "
                                f"WHERE m.received_by = 'wroute' AND d.transport = 'relay' "
                                f"AND d.recipient = '{SENDER}'") == 1, 30, what="the reply routed to the relay")


def test_member_refused_in_the_fan_out_is_reported_to_the_lists_bounce_address(p):
    wait_until(lambda: copies(p, "bo", "staffpost") == 1, 30, what="the staff list copy")
    wait_until(lambda: any(b"Final-Recipient: rfc822; gone@other.test" in open(f, "rb").read()
                           for f in p.maildir_files("lb")), 30, what="the list's report in lb's Maildir")


def poster_reports(p):
    return sql(p, f"SELECT coalesce(string_agg(convert_from(b.data, 'UTF8'), ''), '') "
                  f"FROM messages m JOIN recipients r ON r.message_id = m.id "
                  f"JOIN body_chunks b ON b.message_id = m.id "
                  f"WHERE m.received_by = 'wdeliver-dsn' AND r.address = '{SENDER}'")


def test_empty_list_is_refused_to_the_poster(p):
    d = p.domain
    wait_until(lambda: count(p, f"SELECT count(*) FROM deliveries WHERE recipient = 'empty@{d}' "
                                f"AND status = 'bounced'") == 1, 30, what="the empty list's refusal")
    empty = count(p, f"SELECT count(*) FROM deliveries WHERE recipient = 'empty@{d}' AND status = 'bounced' "
                     f"AND last_error = '5.2.4 mailing list has no members'")
    assert empty == 1, empty
    wait_until(lambda: f"empty@{d}" in poster_reports(p), 30, what="the poster's report of the empty list")


def test_poster_gets_no_report_of_a_list_members_refusal(p):
    wait_until(lambda: any(b"Final-Recipient: rfc822; gone@other.test" in open(f, "rb").read()
                           for f in p.maildir_files("lb")), 30, what="the list's report in lb's Maildir")
    wait_until(lambda: f"empty@{p.domain}" in poster_reports(p), 30, what="the poster's report of the empty list")
    assert "gone@other.test" not in poster_reports(p)

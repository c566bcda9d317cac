#!/usr/bin/env python3
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
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "harness"))
from pipeline import Pipeline, wait_until  # noqa: E402
from router_harness import count, sql  # noqa: E402

SENDER = "friend@client.example"


def message(to, subject, extra=""):
    return (f"From: {SENDER}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{subject}@client.example>\r\n"
            f"{extra}\r\nbody of {subject}\r\n")


def copies(p, user, subject):
    needle = f"Subject: {subject}".encode()
    return sum(1 for f in p.maildir_files(user) if needle in open(f, "rb").read())


def main():
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

        wait_until(lambda: copies(p, "ann", "plus") == 1, 30, what="plus-addressed copy")
        wait_until(lambda: copies(p, "pm", "catchall") == 1, 30, what="catch-all copy")
        wait_until(lambda: copies(p, "bo", "listpost") == 1 and copies(p, "ann", "listpost") == 1, 30,
                   what="list copies")
        wait_until(lambda: copies(p, "ann", "vacation2") == 1, 30, what="vacation mail")

        post = "(SELECT id FROM messages m JOIN body_chunks b ON b.message_id = m.id " \
               "WHERE position('Subject: listpost' in convert_from(b.data, 'UTF8')) > 0 LIMIT 1)"
        bo_row = sql(p, f"SELECT envelope_from_override || '|' || prepend_headers FROM deliveries "
                        f"WHERE message_id = {post} AND recipient = 'bo@{d}'")
        assert bo_row.startswith(f"team-bounces@{d}|List-Id: <team.{d}>"), bo_row
        assert f"X-Loop: team@{d}" in bo_row, bo_row
        # The deliverer puts the list's headers on top and its bounce address in Return-Path.
        bo_copy = next(open(f, "rb").read() for f in p.maildir_files("bo") if b"Subject: listpost" in open(f, "rb").read())
        assert bo_copy.startswith(f"Return-Path: <team-bounces@{d}>\nDelivered-To: bo@{d}\n".encode()), bo_copy[:200]
        assert f"List-Id: <team.{d}>".encode() in bo_copy.split(b"\nReceived:")[0], bo_copy[:400]
        ann_copy = next(open(f, "rb").read() for f in p.maildir_files("ann") if b"Subject: listpost" in open(f, "rb").read())
        assert b"List-Id:" not in ann_copy and ann_copy.startswith(f"Return-Path: <{SENDER}>".encode()), ann_copy[:200]
        # ann is a member and a direct recipient: one row, the direct (plain) copy.
        ann_rows = sql(p, f"SELECT coalesce(envelope_from_override, 'direct') FROM deliveries "
                          f"WHERE message_id = {post} AND recipient = 'ann@{d}'")
        assert ann_rows == "direct", ann_rows

        closed = count(p, f"SELECT count(*) FROM deliveries WHERE original_rcpt = 'closed@{d}' "
                          f"AND status = 'bounced' AND last_error LIKE '5.7.2%'")
        assert closed == 1, closed

        replies = lambda: count(p, f"SELECT count(*) FROM messages m JOIN recipients r ON r.message_id = m.id "
                                   f"WHERE m.envelope_from = '' AND r.address = '{SENDER}' "
                                   f"AND m.received_by = 'wroute'")
        wait_until(lambda: replies() >= 1, 30, what="the vacation reply")
        assert replies() == 1, f"expected one vacation reply, got {replies()}"
        # The reply was routed to the relay pool like any outbound mail.
        wait_until(lambda: count(p, f"SELECT count(*) FROM deliveries d JOIN messages m ON m.id = d.message_id "
                                    f"WHERE m.received_by = 'wroute' AND d.transport = 'relay' "
                                    f"AND d.recipient = '{SENDER}'") == 1, 30, what="the reply routed to the relay")

        # A member refused inside a list's fan-out is reported to the list's
        # bounce address (lb's Maildir), not to the poster; an empty list is
        # refused to the poster.
        wait_until(lambda: copies(p, "bo", "staffpost") == 1, 30, what="the staff list copy")
        wait_until(lambda: any(b"Final-Recipient: rfc822; gone@other.test" in open(f, "rb").read()
                               for f in p.maildir_files("lb")), 30, what="the list's report in lb's Maildir")
        empty = count(p, f"SELECT count(*) FROM deliveries WHERE recipient = 'empty@{d}' AND status = 'bounced' "
                         f"AND last_error = '5.2.4 mailing list has no members'")
        assert empty == 1, empty
        poster_reports = lambda: sql(p, f"SELECT coalesce(string_agg(convert_from(b.data, 'UTF8'), ''), '') "
                                        f"FROM messages m JOIN recipients r ON r.message_id = m.id "
                                        f"JOIN body_chunks b ON b.message_id = m.id "
                                        f"WHERE m.received_by = 'wdeliver-dsn' AND r.address = '{SENDER}'")
        wait_until(lambda: f"empty@{d}" in poster_reports(), 30, what="the poster's report of the empty list")
        assert "gone@other.test" not in poster_reports()
        print("router rules end to end: ok")


if __name__ == "__main__":
    main()

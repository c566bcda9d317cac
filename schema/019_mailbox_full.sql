-- 019: refuse mail for a full mailbox at RCPT (issue 15, item 9).
--
-- Until now quota was checked only at delivery: mail for a full mailbox was
-- accepted, sat deferred in the queue for up to queue_lifetime and then
-- bounced, so one full mailbox let anyone fill the database's disk. The
-- deliverer knows when a Maildir copy does not fit; it writes that here, and
-- the listener's recipient check (one query per RCPT, as before) answers
-- 452 4.2.2 for the mailbox while the mark is fresh.
--
-- over_quota_seen: when a delivery last found the mailbox over its quota;
-- NULL once a delivery into it fitted again (or the operator changed its
-- quota). wdeliver writes it only when it changes: set when NULL or older
-- than ten minutes, cleared only when set, so a busy mailbox costs no writes.
-- The listener ignores a mark older than an hour: a mailbox emptied by its
-- owner with no deferred mail left to retry (and so nothing to clear the
-- mark) takes mail again after at most an hour, and the first copy that does
-- not fit marks it anew.
ALTER TABLE mailboxes ADD COLUMN over_quota_seen timestamptz;

GRANT UPDATE (over_quota_seen) ON mailboxes TO wsmtp_deliver;
GRANT SELECT (over_quota_seen) ON mailboxes TO wsmtp_listener;

COMMENT ON COLUMN mailboxes.over_quota_seen IS
$$When wdeliver last found this mailbox over its quota; NULL once a copy fitted again. wsmtp
answers RCPT with 452 4.2.2 while it is less than an hour old (019).$$;

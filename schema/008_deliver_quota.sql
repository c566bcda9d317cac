-- 008: what the delivery agent needs for mailbox quotas, 8-bit downgrades and
-- exactly-once mbox appends. The migrator runs this in one transaction.

-- Per-mailbox quota for Maildir delivery: the most bytes and messages its
-- Maildir (new/ + cur/) may hold. NULL: no limit. wdeliver measures the usage
-- itself (a scan of the Maildir, cached while its directories are unchanged)
-- and treats a delivery that would exceed a limit per [deliver] over_quota.
ALTER TABLE mailboxes
    ADD COLUMN quota_bytes bigint CHECK (quota_bytes > 0),
    ADD COLUMN quota_messages integer CHECK (quota_messages > 0);

-- Relays without 8BITMIME (RFC 6152 §3): 'convert' downgrades 8-bit bodies to
-- quoted-printable per MIME part; 'bounce' fails the message with 5.6.3; 'send'
-- passes it unchanged. New pools convert, as RFC 6152 recommends over bouncing;
-- existing pools keep the policy they were given.
ALTER TABLE relay_pools DROP CONSTRAINT relay_pools_eightbit_policy_check;
ALTER TABLE relay_pools ADD CONSTRAINT relay_pools_eightbit_policy_check
    CHECK (eightbit_policy IN ('convert', 'bounce', 'send'));
ALTER TABLE relay_pools ALTER COLUMN eightbit_policy SET DEFAULT 'convert';

-- mbox: the spool's size just before this delivery's latest append, written
-- (under the spool's locks) before the append starts. A deliverer that dies
-- between the append and the commit of its result leaves it set; the retry
-- finds its own message at that offset (by its X-WSMTP-Delivery header) and
-- does not append a second copy.
ALTER TABLE deliveries ADD COLUMN spool_offset bigint CHECK (spool_offset >= 0);

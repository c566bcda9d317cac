-- 016: the transports a mailbox and a delivery may name, as CHECK constraints.
--
-- mailboxes.transport was free text: a typo ('mdir', 'LMTP') was accepted by
-- the database, routed, and then never claimed by any deliverer (each claims
-- only the transports it serves), so the mail sat in the queue without an
-- error. The values the code knows:
--   mailboxes.transport   maildir, mbox, lmtp (a local mailbox's agent)
--   deliveries.transport  the same, plus relay (an outbound pool, named in
--                         destination) and bounce (a recipient the router
--                         refused or an operator bounced; final at once)
--
-- mailboxes.maildir is the mailbox's destination for every transport (the
-- router copies it into deliveries.destination; the name is historical): an
-- absolute path for maildir (the Maildir) and mbox (the spool file); for lmtp
-- the LMTP server, an absolute Unix socket path or host:port (deliver/lmtp.cpp;
-- a configured lmtp_server overrides it). 001 required '/%' for all of them,
-- which left LMTP over TCP without a way to be stored.
--
-- Rows that break the new rules stop the migration with their addresses, so
-- an administrator fixes them (wsmtpctl mailbox remove/add) rather than the
-- migration guessing.

DO $$
DECLARE
    bad text;
BEGIN
    SELECT string_agg(address || ' (' || transport || ')', ', ' ORDER BY address) INTO bad
    FROM mailboxes WHERE transport NOT IN ('maildir', 'mbox', 'lmtp');
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'mailboxes with an unknown transport (known: maildir, mbox, lmtp): %', bad;
    END IF;
    SELECT string_agg(DISTINCT transport, ', ') INTO bad
    FROM deliveries WHERE transport NOT IN ('maildir', 'mbox', 'lmtp', 'relay', 'bounce');
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'deliveries with an unknown transport (known: maildir, mbox, lmtp, relay, bounce): %', bad;
    END IF;
END;
$$;

ALTER TABLE mailboxes DROP CONSTRAINT mailboxes_maildir_check;
ALTER TABLE mailboxes ADD CONSTRAINT mailboxes_transport_check
    CHECK (transport IN ('maildir', 'mbox', 'lmtp'));
-- host:port: a host name or IPv4 address and a port of 1-5 digits (wsmtpctl
-- checks the range and names the problem; the deliverer splits at the last
-- colon, so IPv6 literals are not offered).
ALTER TABLE mailboxes ADD CONSTRAINT mailboxes_destination_check
    CHECK (maildir LIKE '/%'
           OR (transport = 'lmtp' AND maildir ~ '^[A-Za-z0-9][A-Za-z0-9.-]*:[0-9]{1,5}$'));

ALTER TABLE deliveries ADD CONSTRAINT deliveries_transport_known
    CHECK (transport IN ('maildir', 'mbox', 'lmtp', 'relay', 'bounce'));

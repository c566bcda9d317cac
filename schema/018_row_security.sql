-- 018: each role touches only the rows and columns its transitions need
-- (issue 15, item 1).
--
-- Until now the listener could INSERT into recipients for any message, and
-- row-level security covered only messages and body_chunks: a compromised
-- listener could LISTEN wsmtp_route and add itself as a recipient of every
-- message waiting to be routed, including mail other MX hosts received, DSNs
-- and held mail. The deliverer and the reaper could rewrite any delivery,
-- its recipient and destination included.
--
-- Listener. A receipt belongs to the database login that created it: the new
-- column messages.receipt_owner holds its session_user (one login per host,
-- deploy/README.md), written only by the two SECURITY DEFINER functions that
-- create receipts, begin_receipt (streamed, state 0) and receive_batch (whole,
-- state 1). The listener loses INSERT on messages and recipients: recipients
-- are written only together with a new message (a reused id fails on the
-- primary key), so it cannot add one to any existing message, its own
-- included. It reads, commits (0 -> 1, named columns only), deletes and
-- streams bodies into only its own receipts; another host's receipts and
-- every generated message are invisible to it. No new index: every listener
-- statement finds its row by primary key, and the owner test is a comparison
-- on that row.
--
-- Of the directory, the listener reads only the columns that say whether an
-- address exists (and AUTH's hashes), not where mail goes or who is on a list.
--
-- Router, deliverer, reaper. UPDATE and INSERT on messages are limited to the
-- columns their transitions write (never the envelope, client, size or fair
-- order). Row-level security now also covers recipients (only the router
-- reads them; router and deliverer add them only to the messages they
-- generate) and deliveries (the router plans only messages in ROUTING, or
-- ROUTED for the list fan-outs that follow in the same transaction; the
-- deliverer records results only for messages in DELIVERING and changes only
-- the attempt columns; the reaper only bounces pending deliveries of ROUTED
-- messages). The reaper and the deliverer no longer read recipients. Their
-- rows are limited by state, not by login: any deliverer may claim any due
-- message, so tying a lease to a login would not keep a compromised one from
-- them; what none of them can do is redirect mail (recipient, transport,
-- destination, envelope).
--
-- Upgrade: receipts created before this migration have no owner, so a
-- listener can no longer finish one streaming during the upgrade (its client
-- gets 451 and sends again; the reaper deletes the rest), and a listener of
-- the previous release can no longer store a message bigger than one chunk.
-- Upgrade the listeners together with the schema.

ALTER TABLE messages ADD COLUMN receipt_owner text;

-- --- receipts ---------------------------------------------------------------

-- Message and recipients in one statement, as create_message did: one round
-- trip per streamed message. PL/pgSQL keeps the plan for the session (013).
CREATE FUNCTION begin_receipt(msg_id bigint, sender text, client text, helo text, by_host text, rcpts text[])
RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    WITH m AS (
        INSERT INTO messages (id, state, envelope_from, client_addr, client_helo, received_by, receipt_owner)
        OVERRIDING SYSTEM VALUE VALUES (msg_id, 0, sender, NULLIF(client, '')::inet, helo, by_host, session_user)
        RETURNING id)
    INSERT INTO recipients (message_id, seq, address)
    SELECT m.id, r.ord - 1, r.address FROM m, unnest(rcpts) WITH ORDINALITY AS r(address, ord);
END;
$$;

CREATE OR REPLACE FUNCTION receive_batch(ids bigint[], stamps bigint[], senders text[], clients text[], helos text[],
                                         received_by text[], sizes bigint[], rcpt_ord bigint[], rcpt_seq int[],
                                         rcpt_addr text[], bodies bytea[])
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    created bigint;
BEGIN
    WITH input AS (
        SELECT * FROM unnest(ids, stamps, senders, clients, helos, received_by, sizes, bodies)
                      WITH ORDINALITY AS i(id, stamp, sender, client, helo, by, size, body, ord)),
    m AS (
        INSERT INTO messages (id, state, envelope_from, client_addr, client_helo, received_by, size, route_vtime,
                              received_at, receipt_owner)
        OVERRIDING SYSTEM VALUE
        SELECT i.id, 1, i.sender, NULLIF(i.client, '')::inet, i.helo, i.by, i.size, i.stamp, now(), session_user
        FROM input AS i
        RETURNING 1),
    r AS (
        INSERT INTO recipients (message_id, seq, address)
        SELECT i.id, x.seq, x.address
        FROM unnest(rcpt_ord, rcpt_seq, rcpt_addr) AS x(ord, seq, address) JOIN input AS i ON i.ord = x.ord),
    b AS (
        INSERT INTO body_chunks (message_id, seq, data) SELECT i.id, 0, i.body FROM input AS i)
    SELECT count(*) INTO created FROM m;
    RETURN created;
END;
$$;

DO $$
BEGIN
    -- CREATE OR REPLACE dropped receive_batch's settings: the same as 009.
    EXECUTE format('ALTER FUNCTION receive_batch(bigint[], bigint[], text[], text[], text[], text[], bigint[], '
                   'bigint[], int[], text[], bytea[]) SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION begin_receipt(bigint, text, text, text, text, text[]) SET search_path = %I, pg_temp',
                   current_schema());
END;
$$;
REVOKE EXECUTE ON FUNCTION begin_receipt(bigint, text, text, text, text, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION begin_receipt(bigint, text, text, text, text, text[]) TO wsmtp_listener, wsmtp_admin;
-- Called only through receive_messages, which stamps the batch: called
-- directly, a listener would choose its own place in the routing order.
REVOKE EXECUTE ON FUNCTION receive_batch(bigint[], bigint[], text[], text[], text[], text[], bigint[], bigint[], int[],
                                         text[], bytea[]) FROM wsmtp_listener;

-- --- the directory, as the listener sees it ----------------------------------

-- check_recipient asks only whether an address exists, and AUTH needs the
-- hash: not where mail goes (alias and catch-all targets, Maildir paths,
-- transports, quotas) nor who is on a list.
REVOKE SELECT ON domains, mailboxes, aliases, lists, catchalls, auth_users FROM wsmtp_listener;
GRANT SELECT (name, recipient_delimiter) ON domains TO wsmtp_listener;
GRANT SELECT (address) ON mailboxes, aliases, lists TO wsmtp_listener;
GRANT SELECT (domain) ON catchalls TO wsmtp_listener;
GRANT SELECT (username, password_hash, disabled) ON auth_users TO wsmtp_listener;

-- --- column grants on messages ----------------------------------------------

REVOKE INSERT, UPDATE ON messages FROM wsmtp_listener, wsmtp_router, wsmtp_deliver, wsmtp_reaper;

-- The commit 0 -> 1 (commit_received; the stamp trigger writes the others).
GRANT UPDATE (state, size, route_vtime, state_changed_at, received_at) ON messages TO wsmtp_listener;

-- Generated messages (create_generated_message): no id, lease, hold or owner.
GRANT INSERT (state, envelope_from, client_addr, client_helo, received_by, size, received_at) ON messages
    TO wsmtp_router, wsmtp_deliver;

-- Claims, lease renewals and resets, finishes, holds: the queue's bookkeeping.
GRANT UPDATE (state, state_changed_at, routing_at, routed_at, delivering_at, done_at, next_attempt_at, lease_owner,
              lease_token, lease_expires, expired_claims, held, held_reason) ON messages
    TO wsmtp_router, wsmtp_deliver, wsmtp_reaper;
GRANT UPDATE (routing_failures, last_error) ON messages TO wsmtp_router;  -- record_routing_failure
GRANT UPDATE (delay_warned_at) ON messages TO wsmtp_deliver;              -- queue_delay_warning

-- --- row-level security on messages and body_chunks -------------------------

DROP POLICY listener_create ON messages;
ALTER POLICY listener_read ON messages USING (receipt_owner = session_user);
ALTER POLICY listener_commit ON messages
    USING (state = 0 AND receipt_owner = session_user) WITH CHECK (state IN (0, 1) AND receipt_owner = session_user);
ALTER POLICY listener_discard ON messages USING (state = 0 AND receipt_owner = session_user);

ALTER POLICY listener_stream ON body_chunks
    WITH CHECK (EXISTS (SELECT 1 FROM messages m
                        WHERE m.id = message_id AND m.state = 0 AND m.receipt_owner = session_user));
-- A receipt has an owner; only generated messages have none.
ALTER POLICY generators_write ON body_chunks
    WITH CHECK (EXISTS (SELECT 1 FROM messages m
                        WHERE m.id = message_id AND m.state = 1 AND m.client_addr IS NULL
                          AND m.receipt_owner IS NULL));

-- --- recipients ---------------------------------------------------------------

REVOKE INSERT ON recipients FROM wsmtp_listener;
REVOKE SELECT ON recipients FROM wsmtp_deliver, wsmtp_reaper;

ALTER TABLE recipients ENABLE ROW LEVEL SECURITY;

CREATE POLICY router_read ON recipients FOR SELECT TO wsmtp_router USING (true);
CREATE POLICY generators_write ON recipients FOR INSERT TO wsmtp_router, wsmtp_deliver
    WITH CHECK (EXISTS (SELECT 1 FROM messages m
                        WHERE m.id = message_id AND m.state = 1 AND m.client_addr IS NULL
                          AND m.receipt_owner IS NULL));
CREATE POLICY admin_all ON recipients TO wsmtp_admin USING (true) WITH CHECK (true);

-- --- deliveries ---------------------------------------------------------------

REVOKE UPDATE ON deliveries FROM wsmtp_deliver, wsmtp_reaper;
-- finish_delivery, finish_delivered_batch, the mbox spool offset, DSN links.
GRANT UPDATE (status, attempts, next_attempt_at, last_error, final_at, dsn_message_id, spool_offset) ON deliveries
    TO wsmtp_deliver;
GRANT UPDATE (status, final_at, last_error) ON deliveries TO wsmtp_reaper;  -- expire_queue_lifetime

ALTER TABLE deliveries ENABLE ROW LEVEL SECURITY;

CREATE POLICY workers_read ON deliveries FOR SELECT TO wsmtp_router, wsmtp_deliver, wsmtp_reaper USING (true);
-- finish_routing inserts in the statement that moves 2 -> 3 (which still sees
-- state 2); the list fan-outs follow in the same transaction (state 3).
CREATE POLICY router_plan ON deliveries FOR INSERT TO wsmtp_router
    WITH CHECK (EXISTS (SELECT 1 FROM messages m WHERE m.id = message_id AND m.state IN (2, 3)));
CREATE POLICY deliver_record ON deliveries FOR UPDATE TO wsmtp_deliver
    USING (EXISTS (SELECT 1 FROM messages m WHERE m.id = message_id AND m.state = 4))
    WITH CHECK (EXISTS (SELECT 1 FROM messages m WHERE m.id = message_id AND m.state = 4));
-- A DSN is queued after its message moved 4 -> 5 (deliverer) or 2 -> 3
-- (router, a list's refused members): linking it needs no state.
CREATE POLICY dsn_link ON deliveries FOR UPDATE TO wsmtp_router, wsmtp_deliver
    USING (status = 'bounced' AND dsn_message_id IS NULL)
    WITH CHECK (status = 'bounced' AND dsn_message_id IS NOT NULL);
CREATE POLICY reaper_expire ON deliveries FOR UPDATE TO wsmtp_reaper
    USING (status = 'pending' AND EXISTS (SELECT 1 FROM messages m WHERE m.id = message_id AND m.state = 3))
    WITH CHECK (status = 'bounced');
CREATE POLICY admin_all ON deliveries TO wsmtp_admin USING (true) WITH CHECK (true);

-- --- explanations (017's convention: every column, function and policy
-- that needs one has a COMMENT) -------------------------------------------------

COMMENT ON COLUMN messages.receipt_owner IS
$$The database login (session_user) of the listener that received the message, set by
begin_receipt and receive_batch; NULL for generated messages (DSNs, auto-replies, list reports)
and for receipts from before 018. The listener's row-level policies admit only its own rows.$$;

COMMENT ON TABLE messages IS
$$The queue: one row per message, moved through the states of msg_states by the listener
(0 -> 1), the router (1 -> 2 -> 3) and the deliverer (3 -> 4 -> 5 or 4 -> 3), and deleted by the
reaper in states 0 and 5. Seven triggers act on its rows (see each trigger's comment): in firing
order on an insert or state change, messages_route_fairness stamps route_vtime,
messages_state_refuse_* reject moves outside msg_transitions, messages_state_stamp_* set the
time stamps, and messages_state_wakeup_* (after the statement) NOTIFY the next stage. Row-level
security: 13 policies, one per role and command (see each policy's comment), and column grants
per role (018); the owner, and the SECURITY DEFINER functions it owns, bypass them. A lease
(lease_owner, lease_token, lease_expires: all set or all NULL) marks a message a worker claimed
in state 2 or 4.$$;

COMMENT ON TABLE recipients IS
$$The envelope recipients (RCPT TO) of a message, in order; deleted with it. The router expands
them into deliveries. Row-level security: 3 policies; the listener writes them only through
begin_receipt and receive_batch, together with their message.$$;

COMMENT ON TABLE deliveries IS
$$One row per final recipient of a message, written by the router in the move 2 -> 3: the
transport and destination to deliver to, and the attempt bookkeeping the deliverer keeps
(status pending -> delivered or bounced, final_at set with it). Deleted with the message.
Row-level security: 6 policies (who may plan, record, bounce and link which rows); the deliverer
and the reaper may update only the attempt columns.$$;

COMMENT ON FUNCTION begin_receipt(bigint, text, text, text, text, text[]) IS
$$The listener's start of a streamed receipt: creates the message in state 0 under the reserved
id, owned by the caller's login (receipt_owner = session_user), and its recipients, in one
statement. SECURITY DEFINER because the listener may not insert recipients itself: this way they
exist only together with a new message (a reused id fails on the primary key). Executable by
wsmtp_listener and wsmtp_admin only.$$;

COMMENT ON FUNCTION receive_batch(bigint[], bigint[], text[], text[], text[], text[], bigint[], bigint[], integer[],
                                  text[], bytea[]) IS
$$Creates a batch of messages directly in state 1 under the given ids and stamps, with received_at,
owned by the caller's login (receipt_owner = session_user), their recipients (flat: message
ordinal, seq, address) and one body chunk each, in one statement; returns how many. SECURITY
DEFINER because the listener may write neither recipients nor the bodies of committed messages;
it only creates (a reused id fails on the primary key). Called by receive_messages only (not
executable by the listener itself).$$;

COMMENT ON POLICY listener_read ON messages IS
$$wsmtp_listener reads only the messages its own login received (receipt_owner = session_user):
its receipts in progress, and the outcome of a commit whose answer was lost.$$;
COMMENT ON POLICY listener_commit ON messages IS
$$wsmtp_listener updates only its own receipts in state 0, leaving them in 0 or 1: the commit
0 -> 1 (column grants: state, size, route_vtime and the time stamps).$$;
COMMENT ON POLICY listener_discard ON messages IS
$$wsmtp_listener deletes only its own receipts that never completed (state 0).$$;
COMMENT ON POLICY listener_stream ON body_chunks IS
$$wsmtp_listener writes chunks only for its own receipts still in state 0 (a body streaming in).$$;
COMMENT ON POLICY generators_write ON body_chunks IS
$$wsmtp_router and wsmtp_deliver write chunks only for the messages they generate (state 1, no
client address, no receipt owner).$$;

COMMENT ON POLICY router_read ON recipients IS
$$wsmtp_router reads every message's recipients (the claims return them).$$;
COMMENT ON POLICY generators_write ON recipients IS
$$wsmtp_router and wsmtp_deliver add recipients only to the messages they generate (state 1, no
client address, no receipt owner).$$;
COMMENT ON POLICY admin_all ON recipients IS $$wsmtp_admin (wsmtpctl) may do anything to any recipient.$$;

COMMENT ON POLICY workers_read ON deliveries IS $$wsmtp_router, wsmtp_deliver and wsmtp_reaper read every delivery.$$;
COMMENT ON POLICY router_plan ON deliveries IS
$$wsmtp_router inserts deliveries only for messages in ROUTING (finish_routing) or ROUTED (the list
fan-outs that follow it in the same transaction).$$;
COMMENT ON POLICY deliver_record ON deliveries IS
$$wsmtp_deliver updates only deliveries of messages in DELIVERING (4), i.e. under a delivery
lease, and only the attempt columns (status, attempts, next_attempt_at, last_error, final_at,
dsn_message_id, spool_offset).$$;
COMMENT ON POLICY dsn_link ON deliveries IS
$$wsmtp_router and wsmtp_deliver link a bounced, unreported delivery to the DSN that reports it
(dsn_message_id); it stays bounced.$$;
COMMENT ON POLICY reaper_expire ON deliveries IS
$$wsmtp_reaper only bounces pending deliveries of ROUTED messages (expire_queue_lifetime; column
grants: status, final_at, last_error).$$;
COMMENT ON POLICY admin_all ON deliveries IS $$wsmtp_admin (wsmtpctl) may do anything to any delivery.$$;

-- 020: backpressure at the door, and fair-order keys for local senders
-- (issue 16).
--
-- Backlog counters. A sender whose undelivered mail (states 1 to 4) is over
-- its quota gets 451 4.7.1 at MAIL and RCPT. The listener decides per message
-- which keys its backlog counts under (messages.backlog_keys: "u:<user>" for
-- an authenticated session, "c:<client>" for a trusted or limit-exempt client,
-- "d:<sender domain>" and "c:<client>" for everyone else) and stores them
-- through its receipt functions; generated messages have none.
--
-- The totals are kept by the transitions, not counted per command: a
-- statement-level trigger on messages adds +1 per key when a message enters
-- states 1-4 (created RECEIVED, or 0 -> 1) and -1 when it leaves them (4 -> 5,
-- or deleted). Each writing backend adds to its own row (writer =
-- pg_backend_pid(); a backend runs one transaction at a time), so two
-- listeners, or a listener and a deliverer, never wait on each other's row; a
-- key's backlog is sum(n) over its rows. backlog_fold() (the reaper, every
-- pass) moves the rows that no transaction holds into writer 0 and deletes
-- the keys that reach zero, so the table stays about as big as the set of keys
-- with mail waiting. It folds live writers' rows too, not only those of ended
-- backends: the daemons' connections live for days, and their rows would
-- otherwise collect every key they ever counted. A writer that touches a row
-- while a fold moves it waits for that one short transaction; the fold itself
-- never waits (FOR UPDATE SKIP LOCKED, and one fold at a time).
--
-- Fair-order keys. route_fair_stamp advanced a clock per client address for
-- every message, so on a host whose mail all comes from 127.0.0.1 one local
-- sender's flood pushed every other local sender's mail behind it. The
-- listener now names the client whose clock a message advances separately
-- from the address it records: none for authenticated, trusted and
-- limit-exempt sessions (their mail is ordered by sender only).
--
-- Upgrade: the receipt functions change their arguments, so a listener of the
-- previous release can no longer store mail. Upgrade the listeners together
-- with the schema. Messages already queued have no keys and are not counted.

ALTER TABLE messages ADD COLUMN backlog_keys text[];

CREATE TABLE backlog_counts (
    key text NOT NULL,
    writer int NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (key, writer)
);

-- --- the counting trigger -------------------------------------------------------

-- One function for the three triggers; each names its transition tables
-- backlog_new and backlog_old. Keys are upserted in sorted order, so two
-- statements of one backend never lock its rows in opposite orders. The UPDATE
-- branch counts only rows whose membership of states 1-4 changed; a message's
-- keys are written once, with it (no daemon role may update them).
-- A claim, reset or renewal moves nothing in or out and costs one pass over
-- the statement's rows. Measured on the shared 2-core test machine, 3,000
-- rows per statement, triggers on and off alternately (four runs each): the
-- medians of the claims 1 -> 2 -> 3 -> 4 were 87 and 72 ms, the insert and
-- 4 -> 5 within the run's noise (200-520 ms and 40-160 ms either way).
CREATE FUNCTION backlog_count() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO backlog_counts AS c (key, writer, n)
        SELECT k.key, pg_backend_pid(), count(*)
        FROM backlog_new AS m, unnest(m.backlog_keys) AS k(key)
        WHERE m.state BETWEEN 1 AND 4
        GROUP BY k.key ORDER BY k.key
        ON CONFLICT (key, writer) DO UPDATE SET n = c.n + excluded.n;
    ELSIF TG_OP = 'UPDATE' THEN
        -- Only a row now in 1 (from 0) or 5 (from 4) can have entered or
        -- left: the claims and resets (1 -> 2, 3 -> 4, 4 -> 3, 2 -> 1 too),
        -- lease renewals and holds end here after one pass, without a join.
        IF NOT EXISTS (SELECT 1 FROM backlog_new WHERE state IN (1, 5) AND backlog_keys IS NOT NULL) THEN
            RETURN NULL;
        END IF;
        INSERT INTO backlog_counts AS c (key, writer, n)
        SELECT k.key, pg_backend_pid(), sum(CASE WHEN nw.state = 1 THEN 1 ELSE -1 END)
        FROM backlog_new AS nw JOIN backlog_old AS od ON od.id = nw.id, unnest(nw.backlog_keys) AS k(key)
        WHERE nw.state IN (1, 5) AND (nw.state BETWEEN 1 AND 4) <> (od.state BETWEEN 1 AND 4)
        GROUP BY k.key HAVING sum(CASE WHEN nw.state = 1 THEN 1 ELSE -1 END) <> 0 ORDER BY k.key
        ON CONFLICT (key, writer) DO UPDATE SET n = c.n + excluded.n;
    ELSE
        INSERT INTO backlog_counts AS c (key, writer, n)
        SELECT k.key, pg_backend_pid(), -count(*)
        FROM backlog_old AS m, unnest(m.backlog_keys) AS k(key)
        WHERE m.state BETWEEN 1 AND 4
        GROUP BY k.key ORDER BY k.key
        ON CONFLICT (key, writer) DO UPDATE SET n = c.n + excluded.n;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER messages_backlog_insert
    AFTER INSERT ON messages REFERENCING NEW TABLE AS backlog_new
    FOR EACH STATEMENT EXECUTE FUNCTION backlog_count();
CREATE TRIGGER messages_backlog_update
    AFTER UPDATE ON messages REFERENCING OLD TABLE AS backlog_old NEW TABLE AS backlog_new
    FOR EACH STATEMENT EXECUTE FUNCTION backlog_count();
CREATE TRIGGER messages_backlog_delete
    AFTER DELETE ON messages REFERENCING OLD TABLE AS backlog_old
    FOR EACH STATEMENT EXECUTE FUNCTION backlog_count();

-- --- the fold -------------------------------------------------------------------

-- Moves up to `batch` rows of writers other than 0 that no transaction holds
-- into writer 0, then deletes writer-0 rows that reached zero; returns how
-- many rows it moved. Every total (sum(n) per key) is the same before and
-- after: rows are only merged, and only zero rows deleted. One fold at a time
-- (an advisory lock: a second one returns 0 at once), so writer 0's rows have
-- a single writer too.
CREATE FUNCTION backlog_fold(batch int) RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    moved bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('wsmtp backlog_fold ' || current_schema())) THEN
        RETURN 0;
    END IF;
    WITH picked AS (
        SELECT key, writer FROM backlog_counts WHERE writer <> 0
        ORDER BY key, writer LIMIT batch FOR UPDATE SKIP LOCKED),
    gone AS (
        DELETE FROM backlog_counts AS b USING picked AS p
        WHERE b.key = p.key AND b.writer = p.writer
        RETURNING b.key, b.n),
    sums AS (SELECT key, sum(n) AS n, count(*) AS rows FROM gone GROUP BY key),
    merged AS (
        INSERT INTO backlog_counts AS c (key, writer, n)
        SELECT key, 0, n FROM sums WHERE n <> 0 ORDER BY key
        ON CONFLICT (key, writer) DO UPDATE SET n = c.n + excluded.n)
    SELECT COALESCE(sum(rows), 0) INTO moved FROM sums;
    DELETE FROM backlog_counts WHERE writer = 0 AND n = 0;
    RETURN moved;
END;
$$;

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION backlog_count() SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION backlog_fold(int) SET search_path = %I, pg_temp', current_schema());
END;
$$;

REVOKE ALL ON backlog_counts FROM PUBLIC;
GRANT SELECT ON backlog_counts TO wsmtp_listener, wsmtp_reaper;
REVOKE EXECUTE ON FUNCTION backlog_fold(int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION backlog_fold(int) TO wsmtp_reaper, wsmtp_admin;

-- --- receipts with their keys ------------------------------------------------------

DROP FUNCTION receive_messages(bigint[], text[], text[], text[], text[], bigint[], bigint[], int[], text[], bytea[]);
DROP FUNCTION receive_batch(bigint[], bigint[], text[], text[], text[], text[], bigint[], bigint[], int[], text[],
                            bytea[]);
DROP FUNCTION begin_receipt(bigint, text, text, text, text, text[]);

-- As 018's, plus the message's backlog keys (NULL for none).
CREATE FUNCTION begin_receipt(msg_id bigint, sender text, client text, helo text, by_host text, rcpts text[],
                              keys text[])
RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    WITH m AS (
        INSERT INTO messages (id, state, envelope_from, client_addr, client_helo, received_by, receipt_owner,
                              backlog_keys)
        OVERRIDING SYSTEM VALUE
        VALUES (msg_id, 0, sender, NULLIF(client, '')::inet, helo, by_host, session_user, NULLIF(keys, '{}'))
        RETURNING id)
    INSERT INTO recipients (message_id, seq, address)
    SELECT m.id, r.ord - 1, r.address FROM m, unnest(rcpts) WITH ORDINALITY AS r(address, ord);
END;
$$;

-- As 018's, plus the keys, flat like the recipients: key_ord[j] is the
-- ordinal (1-based) of the message that key_text[j] belongs to.
CREATE FUNCTION receive_batch(ids bigint[], stamps bigint[], senders text[], clients text[], helos text[],
                              received_by text[], sizes bigint[], rcpt_ord bigint[], rcpt_seq int[], rcpt_addr text[],
                              key_ord bigint[], key_text text[], bodies bytea[])
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    created bigint;
BEGIN
    WITH input AS (
        SELECT * FROM unnest(ids, stamps, senders, clients, helos, received_by, sizes, bodies)
                      WITH ORDINALITY AS i(id, stamp, sender, client, helo, by, size, body, ord)),
    keys AS (
        SELECT x.ord, array_agg(x.key ORDER BY x.key) AS ks
        FROM unnest(key_ord, key_text) AS x(ord, key) GROUP BY x.ord),
    m AS (
        INSERT INTO messages (id, state, envelope_from, client_addr, client_helo, received_by, size, route_vtime,
                              received_at, receipt_owner, backlog_keys)
        OVERRIDING SYSTEM VALUE
        SELECT i.id, 1, i.sender, NULLIF(i.client, '')::inet, i.helo, i.by, i.size, i.stamp, now(), session_user, k.ks
        FROM input AS i LEFT JOIN keys AS k ON k.ord = i.ord
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

-- fair_clients[i]: the client whose fair-order clock message i advances, ''
-- for none; clients[i] is the address recorded with it.
CREATE FUNCTION receive_messages(ids bigint[], senders text[], clients text[], fair_clients text[], helos text[],
                                 received_by text[], sizes bigint[], rcpt_ord bigint[], rcpt_seq int[],
                                 rcpt_addr text[], key_ord bigint[], key_text text[], bodies bytea[])
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    IF cardinality(ids) > 1000 THEN
        RAISE EXCEPTION 'receive_messages: % messages in one batch (at most 1000)', cardinality(ids)
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    RETURN receive_batch(ids, route_fair_stamp(senders, fair_clients), senders, clients, helos, received_by, sizes,
                         rcpt_ord, rcpt_seq, rcpt_addr, key_ord, key_text, bodies);
END;
$$;

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION begin_receipt(bigint, text, text, text, text, text[], text[]) '
                   'SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION receive_batch(bigint[], bigint[], text[], text[], text[], text[], bigint[], '
                   'bigint[], int[], text[], bigint[], text[], bytea[]) SET search_path = %I, pg_temp',
                   current_schema());
    EXECUTE format('ALTER FUNCTION receive_messages(bigint[], text[], text[], text[], text[], text[], bigint[], '
                   'bigint[], int[], text[], bigint[], text[], bytea[]) SET search_path = %I, pg_temp',
                   current_schema());
END;
$$;
REVOKE EXECUTE ON FUNCTION begin_receipt(bigint, text, text, text, text, text[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION begin_receipt(bigint, text, text, text, text, text[], text[]) TO wsmtp_listener, wsmtp_admin;
-- Called only through receive_messages, which stamps the batch (018).
REVOKE EXECUTE ON FUNCTION receive_batch(bigint[], bigint[], text[], text[], text[], text[], bigint[], bigint[], int[],
                                         text[], bigint[], text[], bytea[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION receive_batch(bigint[], bigint[], text[], text[], text[], text[], bigint[], bigint[], int[],
                                        text[], bigint[], text[], bytea[]) TO wsmtp_admin;
REVOKE EXECUTE ON FUNCTION receive_messages(bigint[], text[], text[], text[], text[], text[], bigint[], bigint[], int[],
                                            text[], bigint[], text[], bytea[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION receive_messages(bigint[], text[], text[], text[], text[], text[], bigint[], bigint[], int[],
                                           text[], bigint[], text[], bytea[]) TO wsmtp_listener, wsmtp_admin;

-- --- explanations (017's convention) -----------------------------------------------

COMMENT ON COLUMN messages.backlog_keys IS
$$The keys this message's backlog counts under while it is in states 1-4 (backlog_counts), chosen
by the listener that received it: u:<user> (authenticated session), c:<client> (trusted or
limit-exempt client), else d:<lower-case sender domain> (none for the null sender) and
c:<client> (an IPv4 address, or the IPv6 network of [listener] ipv6_limit_prefix). Sorted.
Written by begin_receipt and receive_batch; NULL for generated messages and mail queued before
020, which are not counted.$$;

COMMENT ON TABLE backlog_counts IS
$$Undelivered mail per backlog key (messages.backlog_keys), kept by the triggers messages_backlog_*:
a key's backlog is sum(n) over its rows. writer is the pg_backend_pid() of the backend that
wrote the row (so concurrent writers never update the same row), or 0 for rows merged by
backlog_fold. The listener reads the keys at or above its smallest quota every
backlog_check_interval; wsmtpctl queue shows the largest.$$;

COMMENT ON FUNCTION backlog_count() IS
$$Trigger function of messages_backlog_insert, _update and _delete (statement level, transition
tables backlog_new and backlog_old): for every message that entered states 1-4 adds 1 to each of
its backlog_keys, for every one that left them (4 -> 5, or deleted in 1-4) subtracts 1, in the
writing backend's row (writer = pg_backend_pid()), keys in sorted order. SECURITY DEFINER: the
daemons' roles have no write grant on backlog_counts.$$;

COMMENT ON FUNCTION backlog_fold(integer) IS
$$Moves up to batch rows of backlog_counts with writer <> 0 that no transaction holds (FOR UPDATE
SKIP LOCKED: it never waits) into writer 0, then deletes writer-0 rows whose n is 0; returns
how many rows it moved. Totals per key are unchanged. One at a time (advisory lock; a second
concurrent call returns 0). Run by the reaper every pass; executable by wsmtp_reaper and
wsmtp_admin.$$;

COMMENT ON TRIGGER messages_backlog_insert ON messages IS
$$AFTER INSERT, FOR EACH STATEMENT: counts the new messages in states 1-4 into backlog_counts
(backlog_count()).$$;
COMMENT ON TRIGGER messages_backlog_update ON messages IS
$$AFTER UPDATE, FOR EACH STATEMENT: counts the messages that entered (0 -> 1) or left (4 -> 5)
states 1-4 into backlog_counts (backlog_count()); other updates change no count.$$;
COMMENT ON TRIGGER messages_backlog_delete ON messages IS
$$AFTER DELETE, FOR EACH STATEMENT: subtracts the deleted messages that were in states 1-4 (an
operator's delete) from backlog_counts (backlog_count()).$$;

COMMENT ON FUNCTION begin_receipt(bigint, text, text, text, text, text[], text[]) IS
$$The listener's start of a streamed receipt: creates the message in state 0 under the reserved
id, owned by the caller's login (receipt_owner = session_user), with its backlog keys, and its
recipients, in one statement. SECURITY DEFINER because the listener may not insert recipients
itself: this way they exist only together with a new message (a reused id fails on the primary
key). Executable by wsmtp_listener and wsmtp_admin only.$$;

COMMENT ON FUNCTION receive_batch(bigint[], bigint[], text[], text[], text[], text[], bigint[], bigint[], integer[],
                                  text[], bigint[], text[], bytea[]) IS
$$Creates a batch of messages directly in state 1 under the given ids and stamps, with received_at,
owned by the caller's login (receipt_owner = session_user), their recipients (flat: message
ordinal, seq, address), their backlog keys (flat: message ordinal, key) and one body chunk each,
in one statement; returns how many. SECURITY DEFINER because the listener may write neither
recipients nor the bodies of committed messages; it only creates (a reused id fails on the
primary key). Called by receive_messages only (not executable by the listener itself).$$;

COMMENT ON FUNCTION receive_messages(bigint[], text[], text[], text[], text[], text[], bigint[], bigint[], integer[],
                                     text[], bigint[], text[], bytea[]) IS
$$The listener's store of a batch of whole messages (at most 1000) in one statement: stamps them
(route_fair_stamp of senders and fair_clients: '' where the client's clock is not to advance)
and creates them RECEIVED through receive_batch. SECURITY DEFINER; executable by wsmtp_listener
and wsmtp_admin only.$$;

COMMENT ON TABLE messages IS
$$The queue: one row per message, moved through the states of msg_states by the listener
(0 -> 1), the router (1 -> 2 -> 3) and the deliverer (3 -> 4 -> 5 or 4 -> 3), and deleted by the
reaper in states 0 and 5. Ten triggers act on its rows (see each trigger's comment): in firing
order on an insert or state change, messages_route_fairness stamps route_vtime,
messages_state_refuse_* reject moves outside msg_transitions, messages_state_stamp_* set the
time stamps, and after the statement messages_backlog_* count the backlog (backlog_counts) and
messages_state_wakeup_* NOTIFY the next stage. Row-level security: 13 policies, one per role
and command (see each policy's comment), and column grants per role (018); the owner, and the
SECURITY DEFINER functions it owns, bypass them. A lease (lease_owner, lease_token,
lease_expires: all set or all NULL) marks a message a worker claimed in state 2 or 4.$$;

-- The current WSMTP schema: every table, index, trigger, function and
-- row-level policy after migration 024, as `wsmtpctl db migrate` leaves a
-- fresh database (pg_dump --schema-only of PostgreSQL 15, normalised).
--
-- GENERATED: do not edit. A reference to read, not a script to run: databases
-- are built and upgraded only by the numbered migrations in this directory.
-- The explanations are the schema's own COMMENTs (017_comments.sql onwards).
-- Regenerate after adding a migration, from the source tree:
--   cmake --build build --target wsmtpctl && python3 tests/harness/schema_dump.py --write schema/current.sql
-- The db_schema_current test fails while this file is out of date.

--
-- Name: backlog_count(); Type: FUNCTION
--

CREATE FUNCTION public.backlog_count() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
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

--
-- Name: FUNCTION backlog_count(); Type: COMMENT
--

COMMENT ON FUNCTION public.backlog_count() IS 'Trigger function of messages_backlog_insert, _update and _delete (statement level, transition
tables backlog_new and backlog_old): for every message that entered states 1-4 adds 1 to each of
its backlog_keys, for every one that left them (4 -> 5, or deleted in 1-4) subtracts 1, in the
writing backend''s row (writer = pg_backend_pid()), keys in sorted order. SECURITY DEFINER: the
daemons'' roles have no write grant on backlog_counts.';

--
-- Name: backlog_fold(integer); Type: FUNCTION
--

CREATE FUNCTION public.backlog_fold(batch integer) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
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

--
-- Name: FUNCTION backlog_fold(batch integer); Type: COMMENT
--

COMMENT ON FUNCTION public.backlog_fold(batch integer) IS 'Moves up to batch rows of backlog_counts with writer <> 0 that no transaction holds (FOR UPDATE
SKIP LOCKED: it never waits) into writer 0, then deletes writer-0 rows whose n is 0; returns
how many rows it moved. Totals per key are unchanged. One at a time (advisory lock; a second
concurrent call returns 0). Run by the reaper every pass; executable by wsmtp_reaper and
wsmtp_admin.';

--
-- Name: begin_receipt(bigint, text, text, text, text, text[], text[]); Type: FUNCTION
--

CREATE FUNCTION public.begin_receipt(msg_id bigint, sender text, client text, helo text, by_host text, rcpts text[], keys text[]) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
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

--
-- Name: FUNCTION begin_receipt(msg_id bigint, sender text, client text, helo text, by_host text, rcpts text[], keys text[]); Type: COMMENT
--

COMMENT ON FUNCTION public.begin_receipt(msg_id bigint, sender text, client text, helo text, by_host text, rcpts text[], keys text[]) IS 'The listener''s start of a streamed receipt: creates the message in state 0 under the reserved
id, owned by the caller''s login (receipt_owner = session_user), with its backlog keys, and its
recipients, in one statement. SECURITY DEFINER because the listener may not insert recipients
itself: this way they exist only together with a new message (a reused id fails on the primary
key). Executable by wsmtp_listener and wsmtp_admin only.';

--
-- Name: claim_shard_identity(text, integer); Type: FUNCTION
--

CREATE FUNCTION public.claim_shard_identity(p_name text, p_id integer) RETURNS void
    LANGUAGE plpgsql
    AS $$
DECLARE
    cur shard_identity;
    lo bigint := p_id::bigint * 100000000000000;
    hi bigint := lo + 99999999999999;
    outside bigint;
BEGIN
    -- One claimer at a time (two `db migrate` runs against one shard).
    LOCK TABLE shard_identity IN EXCLUSIVE MODE;
    SELECT * INTO cur FROM shard_identity;
    IF FOUND THEN
        IF cur.shard_id <> p_id THEN
            RAISE EXCEPTION 'this database is shard "%" (id %), not id %', cur.name, cur.shard_id, p_id
                USING HINT = 'a shard''s id never changes: check the conninfo and id of [shard ' || p_name || ']';
        END IF;
        -- Renaming is harmless: the id, not the name, is in the queue ids.
        UPDATE shard_identity SET name = p_name WHERE name <> p_name;
        RETURN;
    END IF;
    SELECT count(*) INTO outside FROM messages WHERE id NOT BETWEEN lo AND hi;
    IF outside > 0 THEN
        RAISE EXCEPTION 'this database holds % messages whose ids are outside shard id %''s range', outside, p_id
            USING HINT = 'a database that already has mail keeps id 0 (the one-server layout); give a new shard an empty database';
    END IF;
    INSERT INTO shard_identity (name, shard_id) VALUES (p_name, p_id);
    IF (SELECT last_value FROM messages_id_seq) < lo THEN
        -- START moves with MINVALUE (a start below the minimum is refused).
        EXECUTE format('ALTER TABLE messages ALTER COLUMN id SET MINVALUE %s SET MAXVALUE %s SET START WITH %s RESTART WITH %s',
                       lo + 1, hi, lo + 1, lo + 1);
    ELSE
        EXECUTE format('ALTER TABLE messages ALTER COLUMN id SET MINVALUE %s SET MAXVALUE %s', greatest(lo, 1), hi);
    END IF;
END
$$;

--
-- Name: FUNCTION claim_shard_identity(p_name text, p_id integer); Type: COMMENT
--

COMMENT ON FUNCTION public.claim_shard_identity(p_name text, p_id integer) IS 'Writes this database''s shard identity on first call and confines messages_id_seq to
the id''s range (id*10^14+1 .. (id+1)*10^14-1); later calls check the id (a rename is
allowed). Refuses an id that differs from the one claimed, and a database whose messages
are outside the range.';

--
-- Name: destination_slot_base(text); Type: FUNCTION
--

CREATE FUNCTION public.destination_slot_base(transport text) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT 65536 * CASE transport WHEN 'relay' THEN 1 WHEN 'lmtp' THEN 2 WHEN 'maildir' THEN 3
                                        WHEN 'mbox' THEN 4 ELSE 5 END $$;

--
-- Name: FUNCTION destination_slot_base(transport text); Type: COMMENT
--

COMMENT ON FUNCTION public.destination_slot_base(transport text) IS 'Second key of a destination''s slot 0: 65536 times its transport''s code; slot i adds i (021).';

--
-- Name: destination_slot_class(text, text); Type: FUNCTION
--

CREATE FUNCTION public.destination_slot_class(transport text, destination text) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT hashtext(transport || ':' || destination) $$;

--
-- Name: FUNCTION destination_slot_class(transport text, destination text); Type: COMMENT
--

COMMENT ON FUNCTION public.destination_slot_class(transport text, destination text) IS 'First key of a destination''s concurrency slots (session advisory locks held by deliverer workers) (021).';

--
-- Name: destination_slot_key(text, text); Type: FUNCTION
--

CREATE FUNCTION public.destination_slot_key(transport text, destination text) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT destination_slot_class(transport, destination)::oid::bigint * 16
                 + destination_slot_base(transport) / 65536 $$;

--
-- Name: FUNCTION destination_slot_key(transport text, destination text); Type: COMMENT
--

COMMENT ON FUNCTION public.destination_slot_key(transport text, destination text) IS 'A destination''s key as saturated_destinations reports it (021).';

--
-- Name: edit_receipt(bigint, text, text[], text, integer, integer); Type: FUNCTION
--

CREATE FUNCTION public.edit_receipt(p_id bigint, p_sender text, p_rcpts text[], p_held_reason text, p_drop_first integer, p_drop_last integer) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
BEGIN
    PERFORM 1 FROM messages WHERE id = p_id AND state = 0 AND receipt_owner = session_user FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'edit_receipt: message % is not a receipt of this login in state 0', p_id;
    END IF;
    IF p_sender IS NOT NULL THEN
        UPDATE messages SET envelope_from = p_sender WHERE id = p_id;
    END IF;
    IF p_rcpts IS NOT NULL THEN
        IF cardinality(p_rcpts) = 0 THEN
            RAISE EXCEPTION 'edit_receipt: message % would have no recipients', p_id;
        END IF;
        DELETE FROM recipients WHERE message_id = p_id;
        INSERT INTO recipients (message_id, seq, address)
        SELECT p_id, r.ord - 1, r.address FROM unnest(p_rcpts) WITH ORDINALITY AS r(address, ord);
    END IF;
    IF p_held_reason IS NOT NULL THEN
        UPDATE messages SET held = true, held_reason = p_held_reason WHERE id = p_id;
    END IF;
    IF p_drop_last >= p_drop_first THEN
        DELETE FROM body_chunks WHERE message_id = p_id AND seq BETWEEN p_drop_first AND p_drop_last;
    END IF;
END
$$;

--
-- Name: FUNCTION edit_receipt(p_id bigint, p_sender text, p_rcpts text[], p_held_reason text, p_drop_first integer, p_drop_last integer); Type: COMMENT
--

COMMENT ON FUNCTION public.edit_receipt(p_id bigint, p_sender text, p_rcpts text[], p_held_reason text, p_drop_first integer, p_drop_last integer) IS 'The milters'' changes to the caller''s own receipt in state 0, in its commit transaction:
a new envelope sender (NULL: unchanged), the whole new recipient list (NULL: unchanged;
never empty), held with a reason (quarantine; NULL: not held), and body chunks
p_drop_first..p_drop_last deleted (a replaced body; none when p_drop_last < p_drop_first).
SECURITY DEFINER because the listener may not write envelopes or recipients itself (018).';

--
-- Name: messages_route_fairness(); Type: FUNCTION
--

CREATE FUNCTION public.messages_route_fairness() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    now_ms bigint := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
    v bigint;
BEGIN
    IF NEW.state <> 1 OR NEW.route_vtime IS NOT NULL THEN
        RETURN NEW;
    END IF;
    v := route_fair_advance('s:' || lower(NEW.envelope_from), now_ms, 100);
    IF NEW.client_addr IS NOT NULL THEN
        v := greatest(v, route_fair_advance('c:' || host(NEW.client_addr), now_ms, 10));
    END IF;
    NEW.route_vtime := v;
    RETURN NEW;
END;
$$;

--
-- Name: FUNCTION messages_route_fairness(); Type: COMMENT
--

COMMENT ON FUNCTION public.messages_route_fairness() IS 'Trigger function of messages_route_fairness. Sets NEW.route_vtime to the later of now and the
clocks of the sender (key s:<lower(envelope_from)>, advanced 100 ms) and of the client (key
c:<host(client_addr)>, advanced 10 ms, skipped when client_addr is NULL), through
route_fair_advance, which locks those route_fairness rows until the commit. Sender key before
client key, as route_fair_stamp, so two transactions never wait on each other in a cycle.
Returns NEW and changes nothing else.';

--
-- Name: messages_state_refuse(); Type: FUNCTION
--

CREATE FUNCTION public.messages_state_refuse() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        RAISE EXCEPTION 'message % cannot be created in state %', NEW.id, NEW.state
            USING ERRCODE = 'check_violation';
    END IF;
    RAISE EXCEPTION 'message %: transition % -> % is not allowed', OLD.id, OLD.state, NEW.state
        USING ERRCODE = 'check_violation';
END;
$$;

--
-- Name: FUNCTION messages_state_refuse(); Type: COMMENT
--

COMMENT ON FUNCTION public.messages_state_refuse() IS 'Trigger function of messages_state_refuse_insert and _move: raises check_violation, so the
statement fails ("message N cannot be created in state S" or "message N: transition A -> B is not
allowed"). The triggers'' WHEN clauses decide; this only reports.';

--
-- Name: messages_state_stamp(); Type: FUNCTION
--

CREATE FUNCTION public.messages_state_stamp() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.received_at := now();  -- only fired for a RECEIVED row without one
        RETURN NEW;
    END IF;
    NEW.state_changed_at := now();
    CASE NEW.state
        WHEN 1 THEN NEW.received_at := COALESCE(NEW.received_at, now());
        WHEN 2 THEN NEW.routing_at := now();
        WHEN 3 THEN NEW.routed_at := COALESCE(NEW.routed_at, now());
        WHEN 4 THEN NEW.delivering_at := now();
        WHEN 5 THEN NEW.done_at := now();
        ELSE NULL;
    END CASE;
    RETURN NEW;
END;
$$;

--
-- Name: FUNCTION messages_state_stamp(); Type: COMMENT
--

COMMENT ON FUNCTION public.messages_state_stamp() IS 'Trigger function of messages_state_stamp_insert and _update. On INSERT: sets NEW.received_at to
now(). On UPDATE: sets NEW.state_changed_at to now(), and the new state''s time stamp: 1
received_at (kept if already set), 2 routing_at, 3 routed_at (kept if already set), 4
delivering_at, 5 done_at. Changes no other column.';

--
-- Name: messages_state_wakeup(); Type: FUNCTION
--

CREATE FUNCTION public.messages_state_wakeup() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    received boolean;
    routed boolean;
BEGIN
    SELECT bool_or(state = 1), bool_or(state = 3) INTO received, routed FROM written;
    IF received THEN
        PERFORM pg_notify('wsmtp_route', '');
    END IF;
    IF routed THEN
        PERFORM pg_notify('wsmtp_deliver', '');
    END IF;
    RETURN NULL;
END;
$$;

--
-- Name: FUNCTION messages_state_wakeup(); Type: COMMENT
--

COMMENT ON FUNCTION public.messages_state_wakeup() IS 'Trigger function of messages_state_wakeup_insert and _update: one pass over the statement''s
written rows (transition table written); NOTIFY wsmtp_route if one of them is RECEIVED (1) and
wsmtp_deliver if one is ROUTED (3). Changes no row. A NOTIFY is delivered at commit, so a
worker never wakes for uncommitted work, and repeats within a transaction fold into one.';

--
-- Name: receive_batch(bigint[], bigint[], text[], text[], text[], text[], bigint[], bigint[], integer[], text[], bigint[], text[], bytea[]); Type: FUNCTION
--

CREATE FUNCTION public.receive_batch(ids bigint[], stamps bigint[], senders text[], clients text[], helos text[], received_by text[], sizes bigint[], rcpt_ord bigint[], rcpt_seq integer[], rcpt_addr text[], key_ord bigint[], key_text text[], bodies bytea[]) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
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

--
-- Name: FUNCTION receive_batch(ids bigint[], stamps bigint[], senders text[], clients text[], helos text[], received_by text[], sizes bigint[], rcpt_ord bigint[], rcpt_seq integer[], rcpt_addr text[], key_ord bigint[], key_text text[], bodies bytea[]); Type: COMMENT
--

COMMENT ON FUNCTION public.receive_batch(ids bigint[], stamps bigint[], senders text[], clients text[], helos text[], received_by text[], sizes bigint[], rcpt_ord bigint[], rcpt_seq integer[], rcpt_addr text[], key_ord bigint[], key_text text[], bodies bytea[]) IS 'Creates a batch of messages directly in state 1 under the given ids and stamps, with received_at,
owned by the caller''s login (receipt_owner = session_user), their recipients (flat: message
ordinal, seq, address), their backlog keys (flat: message ordinal, key) and one body chunk each,
in one statement; returns how many. SECURITY DEFINER because the listener may write neither
recipients nor the bodies of committed messages; it only creates (a reused id fails on the
primary key). Called by receive_messages only (not executable by the listener itself).';

--
-- Name: receive_messages(bigint[], text[], text[], text[], text[], text[], bigint[], bigint[], integer[], text[], bigint[], text[], bytea[]); Type: FUNCTION
--

CREATE FUNCTION public.receive_messages(ids bigint[], senders text[], clients text[], fair_clients text[], helos text[], received_by text[], sizes bigint[], rcpt_ord bigint[], rcpt_seq integer[], rcpt_addr text[], key_ord bigint[], key_text text[], bodies bytea[]) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
BEGIN
    IF cardinality(ids) > 1000 THEN
        RAISE EXCEPTION 'receive_messages: % messages in one batch (at most 1000)', cardinality(ids)
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    RETURN receive_batch(ids, route_fair_stamp(senders, fair_clients), senders, clients, helos, received_by, sizes,
                         rcpt_ord, rcpt_seq, rcpt_addr, key_ord, key_text, bodies);
END;
$$;

--
-- Name: FUNCTION receive_messages(ids bigint[], senders text[], clients text[], fair_clients text[], helos text[], received_by text[], sizes bigint[], rcpt_ord bigint[], rcpt_seq integer[], rcpt_addr text[], key_ord bigint[], key_text text[], bodies bytea[]); Type: COMMENT
--

COMMENT ON FUNCTION public.receive_messages(ids bigint[], senders text[], clients text[], fair_clients text[], helos text[], received_by text[], sizes bigint[], rcpt_ord bigint[], rcpt_seq integer[], rcpt_addr text[], key_ord bigint[], key_text text[], bodies bytea[]) IS 'The listener''s store of a batch of whole messages (at most 1000) in one statement: stamps them
(route_fair_stamp of senders and fair_clients: '''' where the client''s clock is not to advance)
and creates them RECEIVED through receive_batch. SECURITY DEFINER; executable by wsmtp_listener
and wsmtp_admin only.';

--
-- Name: reserve_message_ids(integer); Type: FUNCTION
--

CREATE FUNCTION public.reserve_message_ids(n integer) RETURNS SETOF bigint
    LANGUAGE sql
    AS $$
    SELECT nextval(s.seq)
    FROM (SELECT pg_get_serial_sequence('messages', 'id')::regclass AS seq) AS s, generate_series(1, n)
$$;

--
-- Name: FUNCTION reserve_message_ids(n integer); Type: COMMENT
--

COMMENT ON FUNCTION public.reserve_message_ids(n integer) IS 'n ids from the messages id sequence: the listener reserves its queue ids ahead, so it knows a
batch''s ids before the commit and can look them up if the commit''s answer is lost.';

--
-- Name: route_fair_advance(text, bigint, bigint); Type: FUNCTION
--

CREATE FUNCTION public.route_fair_advance(key text, at bigint, step bigint) RETURNS bigint
    LANGUAGE plpgsql
    AS $$
DECLARE
    base bigint;
BEGIN
    INSERT INTO route_fairness AS f (fair_key, next_vtime) VALUES (key, at + step)
    ON CONFLICT (fair_key) DO UPDATE SET next_vtime = greatest(f.next_vtime, at) + step
    RETURNING f.next_vtime - step INTO base;
    RETURN base;
END;
$$;

--
-- Name: FUNCTION route_fair_advance(key text, at bigint, step bigint); Type: COMMENT
--

COMMENT ON FUNCTION public.route_fair_advance(key text, at bigint, step bigint) IS 'Returns the later of the clock of key and at, and moves the clock to that plus step (creating
it). Locks the route_fairness row until the commit.';

--
-- Name: route_fair_stamp(text[], text[]); Type: FUNCTION
--

CREATE FUNCTION public.route_fair_stamp(senders text[], clients text[]) RETURNS bigint[]
    LANGUAGE plpgsql
    AS $$
DECLARE
    now_ms bigint := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
    stamps bigint[] := array_fill(0::bigint, ARRAY[cardinality(senders)]);
    k record;
    base bigint;
BEGIN
    FOR k IN
        SELECT key, step, array_agg(ord ORDER BY ord) AS ords
        FROM (SELECT 's:' || lower(s) AS key, 100 AS step, ord
              FROM unnest(senders) WITH ORDINALITY AS u(s, ord)
              UNION ALL
              SELECT 'c:' || host(c::inet), 10, ord
              FROM unnest(clients) WITH ORDINALITY AS u(c, ord) WHERE c <> '') AS keys
        GROUP BY key, step
        ORDER BY step DESC, key
    LOOP
        base := route_fair_advance(k.key, now_ms, k.step * cardinality(k.ords));
        FOR i IN 1 .. cardinality(k.ords) LOOP
            stamps[k.ords[i]] := greatest(stamps[k.ords[i]], base + k.step * (i - 1));
        END LOOP;
    END LOOP;
    RETURN stamps;
END;
$$;

--
-- Name: FUNCTION route_fair_stamp(senders text[], clients text[]); Type: COMMENT
--

COMMENT ON FUNCTION public.route_fair_stamp(senders text[], clients text[]) IS 'Fair-order stamps for a batch of messages (senders[i], clients[i]; '''' for no client), one per
message in the order given: each message gets the later of its sender''s and its client''s next
slot. Keys are advanced sender keys first, each group in sorted order.';

--
-- Name: saturated_destinations(text[], integer[]); Type: FUNCTION
--

CREATE FUNCTION public.saturated_destinations(transports text[], limits integer[]) RETURNS bigint[]
    LANGUAGE sql STABLE
    AS $$
    SELECT COALESCE(array_agg(h.k), '{}')
    FROM (SELECT l.classid::bigint * 16 + l.objid::bigint / 65536 AS k, l.objid::bigint / 65536 AS code,
                 count(*) AS held
          FROM pg_locks l
          WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.granted
            AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND l.objid::bigint / 65536 BETWEEN 1 AND 5
          GROUP BY 1, 2) h
    JOIN unnest(transports, limits) AS t(name, lim) ON destination_slot_base(t.name) / 65536 = h.code
    WHERE h.held >= t.lim
    $$;

--
-- Name: FUNCTION saturated_destinations(transports text[], limits integer[]); Type: COMMENT
--

COMMENT ON FUNCTION public.saturated_destinations(transports text[], limits integer[]) IS 'Keys of the destinations whose transport''s limit of slots (limits, by transports) are all held
in this database, read from pg_locks (021).';

--
-- Name: wsmtp_clean_text(text); Type: FUNCTION
--

CREATE FUNCTION public.wsmtp_clean_text(t text) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    AS $$ SELECT t !~ '[\x01-\x1f\x7f]' $$;

--
-- Name: FUNCTION wsmtp_clean_text(t text); Type: COMMENT
--

COMMENT ON FUNCTION public.wsmtp_clean_text(t text) IS 'True when the text has no control characters: a directory value that ends up in a header or an
envelope can inject no header line or SMTP command. Used by CHECK constraints.';

--
-- Name: aliases; Type: TABLE
--

CREATE TABLE public.aliases (
    address text NOT NULL,
    domain text NOT NULL,
    target text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT aliases_address_check CHECK ((address = lower(address))),
    CONSTRAINT aliases_check CHECK ((address ~~ ('%@'::text || domain))),
    CONSTRAINT aliases_target_check CHECK ((target <> ''::text))
);

--
-- Name: TABLE aliases; Type: COMMENT
--

COMMENT ON TABLE public.aliases IS 'Address -> target rewrites, expanded by the router like any recipient (several rows for one
address fan out).';

--
-- Name: auth_users; Type: TABLE
--

CREATE TABLE public.auth_users (
    username text NOT NULL,
    password_hash text NOT NULL,
    disabled boolean DEFAULT false NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT auth_users_password_hash_check CHECK ((password_hash ~~ '$argon2id$%'::text)),
    CONSTRAINT auth_users_username_check CHECK (((username <> ''::text) AND (length(username) <= 255)))
);

--
-- Name: TABLE auth_users; Type: COMMENT
--

COMMENT ON TABLE public.auth_users IS 'SMTP AUTH accounts (RFC 4954) of the listener: an argon2id hash (libsodium crypto_pwhash_str
format, which carries its salt and costs) and a disabled flag.';

--
-- Name: autoreplies; Type: TABLE
--

CREATE TABLE public.autoreplies (
    address text NOT NULL,
    subject text NOT NULL,
    body text NOT NULL,
    starts_at timestamp with time zone DEFAULT '-infinity'::timestamp with time zone NOT NULL,
    ends_at timestamp with time zone DEFAULT 'infinity'::timestamp with time zone NOT NULL,
    period interval DEFAULT '7 days'::interval NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT autoreplies_check CHECK ((ends_at > starts_at)),
    CONSTRAINT autoreplies_period_check CHECK ((period > '00:00:00'::interval)),
    CONSTRAINT autoreplies_subject_check CHECK (public.wsmtp_clean_text(subject))
);

--
-- Name: TABLE autoreplies; Type: COMMENT
--

COMMENT ON TABLE public.autoreplies IS 'Vacation replies (RFC 3834) of a mailbox, active between starts_at and ends_at, at most once per
sender per period (autoreply_sent).';

--
-- Name: autoreply_sent; Type: TABLE
--

CREATE TABLE public.autoreply_sent (
    address text NOT NULL,
    sender text NOT NULL,
    sent_at timestamp with time zone DEFAULT now() NOT NULL
);

--
-- Name: TABLE autoreply_sent; Type: COMMENT
--

COMMENT ON TABLE public.autoreply_sent IS 'When a mailbox last auto-replied to each sender: the once-per-period memory of autoreplies.';

--
-- Name: backlog_counts; Type: TABLE
--

CREATE TABLE public.backlog_counts (
    key text NOT NULL,
    writer integer NOT NULL,
    n bigint NOT NULL
);

--
-- Name: TABLE backlog_counts; Type: COMMENT
--

COMMENT ON TABLE public.backlog_counts IS 'Undelivered mail per backlog key (messages.backlog_keys), kept by the triggers messages_backlog_*:
a key''s backlog is sum(n) over its rows. writer is the pg_backend_pid() of the backend that
wrote the row (so concurrent writers never update the same row), or 0 for rows merged by
backlog_fold. The listener reads the keys at or above its smallest quota every
backlog_check_interval; wsmtpctl queue shows the largest.';

--
-- Name: body_chunks; Type: TABLE
--

CREATE TABLE public.body_chunks (
    message_id bigint NOT NULL,
    seq integer NOT NULL,
    data bytea NOT NULL,
    CONSTRAINT body_chunks_seq_check CHECK ((seq >= 0))
)
WITH (autovacuum_vacuum_scale_factor='0.05', autovacuum_vacuum_threshold='1000', autovacuum_vacuum_cost_limit='2000', toast_tuple_target='8160', autovacuum_analyze_threshold='10000', autovacuum_analyze_scale_factor='0.2');
ALTER TABLE ONLY public.body_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

--
-- Name: TABLE body_chunks; Type: COMMENT
--

COMMENT ON TABLE public.body_chunks IS 'A message''s body (header and content) in chunks, in order, written as it arrives and read back
chunk by chunk; deleted with it. STORAGE EXTERNAL (no compression) and toast_tuple_target 8160
(a small body stays in the row). Row-level security: 4 policies (who may write which bodies).';

--
-- Name: catchalls; Type: TABLE
--

CREATE TABLE public.catchalls (
    domain text NOT NULL,
    target text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT catchalls_target_check CHECK (((target ~~ '%_@_%'::text) AND public.wsmtp_clean_text(target)))
);

--
-- Name: TABLE catchalls; Type: COMMENT
--

COMMENT ON TABLE public.catchalls IS 'Per domain: where mail for an unknown address of the domain goes instead of bouncing.';

--
-- Name: deliveries; Type: TABLE
--

CREATE TABLE public.deliveries (
    id bigint NOT NULL,
    message_id bigint NOT NULL,
    recipient text NOT NULL,
    original_rcpt text NOT NULL,
    transport text NOT NULL,
    destination text NOT NULL,
    status text DEFAULT 'pending'::text NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone DEFAULT now() NOT NULL,
    last_error text,
    final_at timestamp with time zone,
    prepend_headers text DEFAULT ''::text NOT NULL,
    envelope_from_override text,
    dsn_message_id bigint,
    spool_offset bigint,
    CONSTRAINT deliveries_attempts_check CHECK ((attempts >= 0)),
    CONSTRAINT deliveries_check CHECK (((status = 'pending'::text) = (final_at IS NULL))),
    CONSTRAINT deliveries_spool_offset_check CHECK ((spool_offset >= 0)),
    CONSTRAINT deliveries_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'delivered'::text, 'bounced'::text]))),
    CONSTRAINT deliveries_transport_check CHECK ((transport <> ''::text)),
    CONSTRAINT deliveries_transport_known CHECK ((transport = ANY (ARRAY['maildir'::text, 'mbox'::text, 'lmtp'::text, 'relay'::text, 'bounce'::text])))
)
WITH (fillfactor='90', autovacuum_vacuum_scale_factor='0.02', autovacuum_vacuum_threshold='1000', autovacuum_vacuum_cost_limit='2000', autovacuum_analyze_threshold='10000', autovacuum_analyze_scale_factor='0.2');

--
-- Name: TABLE deliveries; Type: COMMENT
--

COMMENT ON TABLE public.deliveries IS 'One row per final recipient of a message, written by the router in the move 2 -> 3: the
transport and destination to deliver to, and the attempt bookkeeping the deliverer keeps
(status pending -> delivered or bounced, final_at set with it). Deleted with the message.
Row-level security: 6 policies (who may plan, record, bounce and link which rows); the deliverer
and the reaper may update only the attempt columns.';

--
-- Name: COLUMN deliveries.dsn_message_id; Type: COMMENT
--

COMMENT ON COLUMN public.deliveries.dsn_message_id IS 'The generated DSN message that reported this bounced delivery (no foreign key: the two have
independent retention). "Bounced and not yet reported" is status = ''bounced'' AND this IS NULL.';

--
-- Name: COLUMN deliveries.spool_offset; Type: COMMENT
--

COMMENT ON COLUMN public.deliveries.spool_offset IS 'mbox: the spool size just before this delivery''s latest append, so a retry after a crash finds
its own copy instead of appending a second.';

--
-- Name: deliveries_id_seq; Type: SEQUENCE
--

ALTER TABLE public.deliveries ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.deliveries_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: destination_backoff; Type: TABLE
--

CREATE TABLE public.destination_backoff (
    transport text NOT NULL,
    destination text NOT NULL,
    failures integer NOT NULL,
    backoff_until timestamp with time zone,
    last_error text,
    failed_at timestamp with time zone DEFAULT now() NOT NULL
);

--
-- Name: TABLE destination_backoff; Type: COMMENT
--

COMMENT ON TABLE public.destination_backoff IS 'Destinations (transport, destination) that failed as a whole: failures in a row, and until when
the deliverer''s claim skips them (NULL: not yet backed off). Written by wdeliver; a success
deletes the row (021).';

--
-- Name: domains; Type: TABLE
--

CREATE TABLE public.domains (
    name text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    recipient_delimiter text DEFAULT '+'::text NOT NULL,
    CONSTRAINT domains_name_check CHECK (((name = lower(name)) AND (name <> ''::text))),
    CONSTRAINT domains_recipient_delimiter_check CHECK (((length(recipient_delimiter) <= 1) AND (recipient_delimiter !~ '[@"\s\\]'::text)))
);

--
-- Name: TABLE domains; Type: COMMENT
--

COMMENT ON TABLE public.domains IS 'The domains this server accepts mail for, and their plus-addressing delimiter ('''' for none).';

--
-- Name: list_members; Type: TABLE
--

CREATE TABLE public.list_members (
    list_address text NOT NULL,
    member text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT list_members_member_check CHECK (((member = lower(member)) AND (member ~~ '%_@_%'::text) AND public.wsmtp_clean_text(member)))
);

--
-- Name: TABLE list_members; Type: COMMENT
--

COMMENT ON TABLE public.list_members IS 'The members of each mailing list.';

--
-- Name: lists; Type: TABLE
--

CREATE TABLE public.lists (
    address text NOT NULL,
    domain text NOT NULL,
    owner text NOT NULL,
    bounce_address text NOT NULL,
    posting_policy text DEFAULT 'members'::text NOT NULL,
    list_id text NOT NULL,
    description text DEFAULT ''::text NOT NULL,
    unsubscribe text DEFAULT ''::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT lists_address_check CHECK ((address = lower(address))),
    CONSTRAINT lists_bounce_address_check CHECK (((bounce_address ~~ '%_@_%'::text) AND public.wsmtp_clean_text(bounce_address))),
    CONSTRAINT lists_check CHECK ((address ~~ ('%@'::text || domain))),
    CONSTRAINT lists_description_check CHECK ((public.wsmtp_clean_text(description) AND (description !~ '[<>]'::text))),
    CONSTRAINT lists_list_id_check CHECK ((list_id ~ '^[A-Za-z0-9!#$%&''*+/=?^_`{|}~.-]+$'::text)),
    CONSTRAINT lists_owner_check CHECK (((owner ~~ '%_@_%'::text) AND public.wsmtp_clean_text(owner))),
    CONSTRAINT lists_posting_policy_check CHECK ((posting_policy = ANY (ARRAY['anyone'::text, 'members'::text, 'moderated'::text]))),
    CONSTRAINT lists_unsubscribe_check CHECK (public.wsmtp_clean_text(unsubscribe))
);

--
-- Name: TABLE lists; Type: COMMENT
--

COMMENT ON TABLE public.lists IS 'Mailing lists (RFC 2369, RFC 2919): owner, posting policy (anyone, members, moderated), List-Id,
and the bounce address their mail leaves with as envelope sender.';

--
-- Name: mailbox_forwards; Type: TABLE
--

CREATE TABLE public.mailbox_forwards (
    address text NOT NULL,
    target text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT mailbox_forwards_target_check CHECK (((target ~~ '%_@_%'::text) AND public.wsmtp_clean_text(target)))
);

--
-- Name: TABLE mailbox_forwards; Type: COMMENT
--

COMMENT ON TABLE public.mailbox_forwards IS 'Forwarding targets of a mailbox; the mailbox keeps a copy if its forward_keep_copy is set.';

--
-- Name: mailboxes; Type: TABLE
--

CREATE TABLE public.mailboxes (
    address text NOT NULL,
    domain text NOT NULL,
    maildir text NOT NULL,
    transport text DEFAULT 'maildir'::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    forward_keep_copy boolean DEFAULT false NOT NULL,
    quota_bytes bigint,
    quota_messages integer,
    over_quota_seen timestamp with time zone,
    CONSTRAINT mailboxes_address_check CHECK ((address = lower(address))),
    CONSTRAINT mailboxes_check CHECK ((address ~~ ('%@'::text || domain))),
    CONSTRAINT mailboxes_destination_check CHECK (((maildir ~~ '/%'::text) OR ((transport = 'lmtp'::text) AND (maildir ~ '^[A-Za-z0-9][A-Za-z0-9.-]*:[0-9]{1,5}$'::text)))),
    CONSTRAINT mailboxes_quota_bytes_check CHECK ((quota_bytes > 0)),
    CONSTRAINT mailboxes_quota_messages_check CHECK ((quota_messages > 0)),
    CONSTRAINT mailboxes_transport_check CHECK ((transport = ANY (ARRAY['maildir'::text, 'mbox'::text, 'lmtp'::text])))
);

--
-- Name: TABLE mailboxes; Type: COMMENT
--

COMMENT ON TABLE public.mailboxes IS 'Local mailboxes. maildir is the destination for every transport (the name is historical): the
Maildir for maildir, the spool file for mbox, a Unix socket path or host:port for lmtp. Optional
quotas, and forward_keep_copy for mailboxes that also forward (mailbox_forwards).';

--
-- Name: COLUMN mailboxes.maildir; Type: COMMENT
--

COMMENT ON COLUMN public.mailboxes.maildir IS 'The destination for every transport (historical name): Maildir path, mbox spool path, or LMTP
server (absolute socket path or host:port).';

--
-- Name: COLUMN mailboxes.over_quota_seen; Type: COMMENT
--

COMMENT ON COLUMN public.mailboxes.over_quota_seen IS 'When wdeliver last found this mailbox over its quota; NULL once a copy fitted again. wsmtp
answers RCPT with 452 4.2.2 while it is less than an hour old (019).';

--
-- Name: messages; Type: TABLE
--

CREATE TABLE public.messages (
    id bigint NOT NULL,
    state smallint DEFAULT 0 NOT NULL,
    envelope_from text NOT NULL,
    client_addr inet,
    client_helo text DEFAULT ''::text NOT NULL,
    received_by text DEFAULT ''::text NOT NULL,
    size bigint DEFAULT 0 NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    received_at timestamp with time zone,
    routing_at timestamp with time zone,
    routed_at timestamp with time zone,
    delivering_at timestamp with time zone,
    done_at timestamp with time zone,
    state_changed_at timestamp with time zone DEFAULT now() NOT NULL,
    next_attempt_at timestamp with time zone DEFAULT now() NOT NULL,
    lease_owner text,
    lease_token uuid,
    lease_expires timestamp with time zone,
    expired_claims integer DEFAULT 0 NOT NULL,
    held boolean DEFAULT false NOT NULL,
    held_reason text,
    last_error text,
    routing_failures integer DEFAULT 0 NOT NULL,
    route_vtime bigint,
    delay_warned_at timestamp with time zone,
    receipt_owner text,
    backlog_keys text[],
    CONSTRAINT messages_check CHECK (((lease_owner IS NULL) = (lease_token IS NULL))),
    CONSTRAINT messages_check1 CHECK (((lease_token IS NULL) = (lease_expires IS NULL))),
    CONSTRAINT messages_check2 CHECK (((state <> 1) OR (received_at IS NOT NULL))),
    CONSTRAINT messages_expired_claims_check CHECK ((expired_claims >= 0)),
    CONSTRAINT messages_routing_failures_check CHECK ((routing_failures >= 0)),
    CONSTRAINT messages_size_check CHECK ((size >= 0)),
    CONSTRAINT messages_state_check CHECK (((state >= 0) AND (state <= 5)))
)
WITH (fillfactor='85', autovacuum_vacuum_scale_factor='0.01', autovacuum_vacuum_threshold='1000', autovacuum_vacuum_cost_limit='2000', autovacuum_analyze_threshold='10000', autovacuum_analyze_scale_factor='0.2');

--
-- Name: TABLE messages; Type: COMMENT
--

COMMENT ON TABLE public.messages IS 'The queue: one row per message, moved through the states of msg_states by the listener
(0 -> 1), the router (1 -> 2 -> 3) and the deliverer (3 -> 4 -> 5 or 4 -> 3), and deleted by the
reaper in states 0 and 5. Ten triggers act on its rows (see each trigger''s comment): in firing
order on an insert or state change, messages_route_fairness stamps route_vtime,
messages_state_refuse_* reject moves outside msg_transitions, messages_state_stamp_* set the
time stamps, and after the statement messages_backlog_* count the backlog (backlog_counts) and
messages_state_wakeup_* NOTIFY the next stage. Row-level security: 13 policies, one per role
and command (see each policy''s comment), and column grants per role (018); the owner, and the
SECURITY DEFINER functions it owns, bypass them. A lease (lease_owner, lease_token,
lease_expires: all set or all NULL) marks a message a worker claimed in state 2 or 4.';

--
-- Name: COLUMN messages.state_changed_at; Type: COMMENT
--

COMMENT ON COLUMN public.messages.state_changed_at IS 'When state last changed: set by the statements of common/pg/transitions.cpp that move messages,
or by the trigger messages_state_stamp_update for any other statement.';

--
-- Name: COLUMN messages.lease_owner; Type: COMMENT
--

COMMENT ON COLUMN public.messages.lease_owner IS 'The worker holding the lease (host:pid), NULL without a lease. '''' marks a lease handed back by
the router after a routing failure (the backoff before the retry): its expiry is not counted in
expired_claims.';

--
-- Name: COLUMN messages.expired_claims; Type: COMMENT
--

COMMENT ON COLUMN public.messages.expired_claims IS 'How many claims on this message expired unfinished; past the configured limit the message is
held where it was reset to (a crash loop or a poison message).';

--
-- Name: COLUMN messages.route_vtime; Type: COMMENT
--

COMMENT ON COLUMN public.messages.route_vtime IS 'Fair routing order (route_fairness): the router claims RECEIVED messages by (route_vtime, id).
Set by the listener''s batches (receive_messages) or by the trigger messages_route_fairness, once:
a message reset 2 -> 1 keeps it.';

--
-- Name: COLUMN messages.receipt_owner; Type: COMMENT
--

COMMENT ON COLUMN public.messages.receipt_owner IS 'The database login (session_user) of the listener that received the message, set by
begin_receipt and receive_batch; NULL for generated messages (DSNs, auto-replies, list reports)
and for receipts from before 018. The listener''s row-level policies admit only its own rows.';

--
-- Name: COLUMN messages.backlog_keys; Type: COMMENT
--

COMMENT ON COLUMN public.messages.backlog_keys IS 'The keys this message''s backlog counts under while it is in states 1-4 (backlog_counts), chosen
by the listener that received it: u:<user> (authenticated session), c:<client> (trusted or
limit-exempt client), else d:<lower-case sender domain> (none for the null sender) and
c:<client> (an IPv4 address, or the IPv6 network of [listener] ipv6_limit_prefix). Sorted.
Written by begin_receipt and receive_batch; NULL for generated messages and mail queued before
020, which are not counted.';

--
-- Name: messages_id_seq; Type: SEQUENCE
--

ALTER TABLE public.messages ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.messages_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    MAXVALUE 99999999999999
    CACHE 1
);

--
-- Name: msg_states; Type: TABLE
--

CREATE TABLE public.msg_states (
    state smallint NOT NULL,
    name text NOT NULL,
    CONSTRAINT msg_states_state_check CHECK (((state >= 0) AND (state <= 5)))
);

--
-- Name: TABLE msg_states; Type: COMMENT
--

COMMENT ON TABLE public.msg_states IS 'The six message states, for people and queries to read: 0 RECEIVING, 1 RECEIVED, 2 ROUTING,
3 ROUTED, 4 DELIVERING, 5 DONE. Nothing references it (messages.state lost its foreign key in 010;
its CHECK admits exactly these values).';

--
-- Name: msg_transitions; Type: TABLE
--

CREATE TABLE public.msg_transitions (
    from_state smallint NOT NULL,
    to_state smallint NOT NULL
);

--
-- Name: TABLE msg_transitions; Type: COMMENT
--

COMMENT ON TABLE public.msg_transitions IS 'The allowed state moves, for people and queries to read: forward 0->1->2->3->4->5, and the resets
2->1 (an expired routing lease) and 4->3 (an expired delivery lease, or deliveries deferred).
No trigger reads this table: messages_state_refuse_move holds the same list as a constant, and
tests/integration/db/common/schema_test.cpp fails if the two ever disagree.';

--
-- Name: recipients; Type: TABLE
--

CREATE TABLE public.recipients (
    message_id bigint NOT NULL,
    seq integer NOT NULL,
    address text NOT NULL,
    CONSTRAINT recipients_seq_check CHECK ((seq >= 0))
)
WITH (autovacuum_vacuum_scale_factor='0.05', autovacuum_vacuum_threshold='5000', autovacuum_analyze_threshold='10000', autovacuum_analyze_scale_factor='0.2');

--
-- Name: TABLE recipients; Type: COMMENT
--

COMMENT ON TABLE public.recipients IS 'The envelope recipients (RCPT TO) of a message, in order; deleted with it. The router expands
them into deliveries. Row-level security: 3 policies; the listener writes them only through
begin_receipt and receive_batch, together with their message.';

--
-- Name: relay_pools; Type: TABLE
--

CREATE TABLE public.relay_pools (
    name text NOT NULL,
    tls_policy text DEFAULT 'opportunistic'::text NOT NULL,
    eightbit_policy text DEFAULT 'convert'::text NOT NULL,
    max_messages_per_connection integer DEFAULT 100 NOT NULL,
    down_time interval DEFAULT '00:01:00'::interval NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT relay_pools_down_time_check CHECK ((down_time >= '00:00:00'::interval)),
    CONSTRAINT relay_pools_eightbit_policy_check CHECK ((eightbit_policy = ANY (ARRAY['convert'::text, 'bounce'::text, 'send'::text]))),
    CONSTRAINT relay_pools_max_messages_per_connection_check CHECK ((max_messages_per_connection > 0)),
    CONSTRAINT relay_pools_name_check CHECK ((name <> ''::text)),
    CONSTRAINT relay_pools_tls_policy_check CHECK ((tls_policy = ANY (ARRAY['none'::text, 'opportunistic'::text, 'required'::text])))
);

--
-- Name: TABLE relay_pools; Type: COMMENT
--

COMMENT ON TABLE public.relay_pools IS 'Named groups of outbound relays (smart hosts) for deliveries with transport relay, which name
their pool in destination: TLS and 8BITMIME policies, messages per connection, and how long a
failing relay stays out of rotation.';

--
-- Name: relays; Type: TABLE
--

CREATE TABLE public.relays (
    pool text NOT NULL,
    host text NOT NULL,
    port integer DEFAULT 25 NOT NULL,
    weight integer DEFAULT 1 NOT NULL,
    down_until timestamp with time zone,
    last_error text,
    CONSTRAINT relays_host_check CHECK ((host <> ''::text)),
    CONSTRAINT relays_port_check CHECK (((port >= 1) AND (port <= 65535))),
    CONSTRAINT relays_weight_check CHECK ((weight >= 0))
);

--
-- Name: TABLE relays; Type: COMMENT
--

COMMENT ON TABLE public.relays IS 'The relays of each pool with their weights; down_until and last_error are written by any
deliverer that found the relay failing, and read by all.';

--
-- Name: route_fairness; Type: TABLE
--

CREATE TABLE public.route_fairness (
    fair_key text NOT NULL,
    next_vtime bigint NOT NULL
);

--
-- Name: TABLE route_fairness; Type: COMMENT
--

COMMENT ON TABLE public.route_fairness IS 'Fair routing order: one virtual clock (milliseconds) per envelope sender (s:<sender>) and per
client address (c:<address>), advanced by route_fair_advance when a message is stamped
(100 ms per message for a sender, 10 ms for a client). Clocks behind now mean nothing and are
pruned by the router.';

--
-- Name: schema_version; Type: TABLE
--

CREATE TABLE public.schema_version (
    version integer NOT NULL,
    name text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);

--
-- Name: TABLE schema_version; Type: COMMENT
--

COMMENT ON TABLE public.schema_version IS 'Migrations applied to this database, one row per schema/NNN_name.sql. Created by wsmtpctl db migrate
(common/pg/migrate.cpp), not by a migration; the daemons refuse to start unless the highest version
equals the one they were built with.';

--
-- Name: shard_identity; Type: TABLE
--

CREATE TABLE public.shard_identity (
    only_row boolean DEFAULT true NOT NULL,
    name text NOT NULL,
    shard_id integer NOT NULL,
    claimed_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT shard_identity_name_check CHECK ((name ~ '^[A-Za-z0-9_-]{1,63}$'::text)),
    CONSTRAINT shard_identity_only_row_check CHECK (only_row),
    CONSTRAINT shard_identity_shard_id_check CHECK (((shard_id >= 0) AND (shard_id <= 92000)))
);

--
-- Name: TABLE shard_identity; Type: COMMENT
--

COMMENT ON TABLE public.shard_identity IS 'This database''s name and id as a queue shard, claimed once by wsmtpctl db migrate
(claim_shard_identity); empty in a database that is only the directory. Programs refuse
a shard whose identity is not the configured one.';

--
-- Name: aliases aliases_pkey; Type: CONSTRAINT
--

ALTER TABLE ONLY public.aliases
    ADD CONSTRAINT aliases_pkey PRIMARY KEY (address, target);

--
-- Name: auth_users auth_users_pkey; Type: CONSTRAINT
--

ALTER TABLE ONLY public.auth_users
    ADD CONSTRAINT auth_users_pkey PRIMARY KEY (username);

--
-- Name: autoreplies autoreplies_pkey; Type: CONSTRAINT
--

ALTER TABLE ONLY public.autoreplies
    ADD CONSTRAINT autoreplies_pkey PRIMARY KEY (address);

--
-- Name: autoreply_sent autoreply_sent_pkey; Type: CONSTRAINT
--

ALTER TABLE ONLY public.autoreply_sent
    ADD CONSTRAINT autoreply_sent_pkey PRIMARY KEY (address, sender);

--
-- Name: backlog_counts backlog_counts_pkey; Type: CONSTRAINT
--

ALTER TABLE ONLY public.backlog_counts
    ADD CONSTRAINT backlog_counts_pkey PRIMARY KEY (key, writer);

--
-- Name: body_chunks body_chunks_pkey; Type: CONSTRAINT
--

ALTER TABLE ONLY public.body_chunks
    ADD CONSTRAINT body_chunks_pkey PRIMARY KEY (message_id, seq);

--
-- Name: catchalls catchalls_pkey; Type: CONSTRAINT
--

ALTER TABLE ONLY public.catchalls
    ADD CONSTRAINT catchalls_pkey PRIMARY KEY (domain);

--
-- Name: deliveries deliveries_message_id_recipient_transport_destination_key; Type: CONSTRAINT
--

ALTER TABLE ONLY public.deliveries
    ADD CONSTRAINT deliveries_message_id_recipient_transport_destination_key UNIQUE (message_id, recipient, transport, destination);

--
-- Name: deliveries deliveries_pkey; Type: CONSTRAINT
--

ALTER TABLE ONLY public.deliveries
    ADD CONSTRAINT deliveries_pkey PRIMARY KEY (id);

--
-- Name: destination_backoff destination_backoff_pkey; Type: CONSTRAINT
--

ALTER TABLE ONLY public.destination_backoff
    ADD CONSTRAINT destination_backoff_pkey PRIMARY KEY (transport, destination);

--
-- Name: domains domains_pkey; Type: CONSTRAINT
--

ALTER TABLE ONLY public.domains
    ADD CONSTRAINT domains_pkey PRIMARY KEY (name);

--
-- Name: list_members list_members_pkey; Type: CONSTRAINT
--

ALTER TABLE ONLY public.list_members
    ADD CONSTRAINT list_members_pkey PRIMARY KEY (list_address, member);

--
-- Name: lists lists_pkey; Type: CONSTRAINT
--

ALTER TABLE ONLY public.lists
    ADD CONSTRAINT lists_pkey PRIMARY KEY (address);

--
-- Name: mailbox_forwards mailbox_forwards_pkey; Type: CONSTRAINT
--

ALTER TABLE ONLY public.mailbox_forwards
    ADD CONSTRAINT mailbox_forwards_pkey PRIMARY KEY (address, target);

--
-- Name: mailboxes mailboxes_pkey; Type: CONSTRAINT
--

ALTER TABLE ONLY public.mailboxes
    ADD CONSTRAINT mailboxes_pkey PRIMARY KEY (address);

--
-- Name: messages messages_pkey; Type: CONSTRAINT
--

ALTER TABLE ONLY public.messages
    ADD CONSTRAINT messages_pkey PRIMARY KEY (id);

--
-- Name: msg_states msg_states_name_key; Type: CONSTRAINT
--

ALTER TABLE ONLY public.msg_states
    ADD CONSTRAINT msg_states_name_key UNIQUE (name);

--
-- Name: msg_states msg_states_pkey; Type: CONSTRAINT
--

ALTER TABLE ONLY public.msg_states
    ADD CONSTRAINT msg_states_pkey PRIMARY KEY (state);

--
-- Name: msg_transitions msg_transitions_pkey; Type: CONSTRAINT
--

ALTER TABLE ONLY public.msg_transitions
    ADD CONSTRAINT msg_transitions_pkey PRIMARY KEY (from_state, to_state);

--
-- Name: recipients recipients_pkey; Type: CONSTRAINT
--

ALTER TABLE ONLY public.recipients
    ADD CONSTRAINT recipients_pkey PRIMARY KEY (message_id, seq);

--
-- Name: relay_pools relay_pools_pkey; Type: CONSTRAINT
--

ALTER TABLE ONLY public.relay_pools
    ADD CONSTRAINT relay_pools_pkey PRIMARY KEY (name);

--
-- Name: relays relays_pkey; Type: CONSTRAINT
--

ALTER TABLE ONLY public.relays
    ADD CONSTRAINT relays_pkey PRIMARY KEY (pool, host, port);

--
-- Name: route_fairness route_fairness_pkey; Type: CONSTRAINT
--

ALTER TABLE ONLY public.route_fairness
    ADD CONSTRAINT route_fairness_pkey PRIMARY KEY (fair_key);

--
-- Name: schema_version schema_version_pkey; Type: CONSTRAINT
--

ALTER TABLE ONLY public.schema_version
    ADD CONSTRAINT schema_version_pkey PRIMARY KEY (version);

--
-- Name: shard_identity shard_identity_pkey; Type: CONSTRAINT
--

ALTER TABLE ONLY public.shard_identity
    ADD CONSTRAINT shard_identity_pkey PRIMARY KEY (only_row);

--
-- Name: deliveries_pending; Type: INDEX
--

CREATE INDEX deliveries_pending ON public.deliveries USING btree (message_id) WHERE (status = 'pending'::text);

--
-- Name: INDEX deliveries_pending; Type: COMMENT
--

COMMENT ON INDEX public.deliveries_pending IS 'A message''s deliveries still pending.';

--
-- Name: messages_deliver_fresh; Type: INDEX
--

CREATE INDEX messages_deliver_fresh ON public.messages USING btree (route_vtime, id) WHERE ((state = 3) AND (NOT held) AND (delivering_at IS NULL));

--
-- Name: INDEX messages_deliver_fresh; Type: COMMENT
--

COMMENT ON INDEX public.messages_deliver_fresh IS 'The deliverer''s claim order for fresh mail: ROUTED, not held, never claimed for delivery, by the fair stamp (route_vtime, id).';

--
-- Name: messages_deliver_retry; Type: INDEX
--

CREATE INDEX messages_deliver_retry ON public.messages USING btree (next_attempt_at, id) WHERE ((state = 3) AND (NOT held) AND (delivering_at IS NOT NULL));

--
-- Name: INDEX messages_deliver_retry; Type: COMMENT
--

COMMENT ON INDEX public.messages_deliver_retry IS 'The deliverer''s claim order for deferred mail (the retry lane): ROUTED, not held, claimed before, by (next_attempt_at, id).';

--
-- Name: messages_leases; Type: INDEX
--

CREATE INDEX messages_leases ON public.messages USING btree (lease_expires) WHERE (lease_expires IS NOT NULL);

--
-- Name: INDEX messages_leases; Type: COMMENT
--

COMMENT ON INDEX public.messages_leases IS 'The reaper''s scan for expired leases (states 2 and 4).';

--
-- Name: messages_reapable; Type: INDEX
--

CREATE INDEX messages_reapable ON public.messages USING btree (state_changed_at) WHERE (state = ANY (ARRAY[0, 5]));

--
-- Name: INDEX messages_reapable; Type: COMMENT
--

COMMENT ON INDEX public.messages_reapable IS 'The reaper''s deletions: aborted (0) and finished (5) messages by age.';

--
-- Name: messages_route_fair; Type: INDEX
--

CREATE INDEX messages_route_fair ON public.messages USING btree (route_vtime, id) WHERE ((state = 1) AND (NOT held));

--
-- Name: INDEX messages_route_fair; Type: COMMENT
--

COMMENT ON INDEX public.messages_route_fair IS 'The router''s claim order: RECEIVED, not held, by (route_vtime, id).';

--
-- Name: messages_routed_since; Type: INDEX
--

CREATE INDEX messages_routed_since ON public.messages USING btree (received_at) WHERE (state = 3);

--
-- Name: INDEX messages_routed_since; Type: COMMENT
--

COMMENT ON INDEX public.messages_routed_since IS 'The reaper''s queue lifetime pass: the oldest ROUTED messages, held or not.';

--
-- Name: messages messages_backlog_delete; Type: TRIGGER
--

CREATE TRIGGER messages_backlog_delete AFTER DELETE ON public.messages REFERENCING OLD TABLE AS backlog_old FOR EACH STATEMENT EXECUTE FUNCTION public.backlog_count();

--
-- Name: TRIGGER messages_backlog_delete ON messages; Type: COMMENT
--

COMMENT ON TRIGGER messages_backlog_delete ON public.messages IS 'AFTER DELETE, FOR EACH STATEMENT: subtracts the deleted messages that were in states 1-4 (an
operator''s delete) from backlog_counts (backlog_count()).';

--
-- Name: messages messages_backlog_insert; Type: TRIGGER
--

CREATE TRIGGER messages_backlog_insert AFTER INSERT ON public.messages REFERENCING NEW TABLE AS backlog_new FOR EACH STATEMENT EXECUTE FUNCTION public.backlog_count();

--
-- Name: TRIGGER messages_backlog_insert ON messages; Type: COMMENT
--

COMMENT ON TRIGGER messages_backlog_insert ON public.messages IS 'AFTER INSERT, FOR EACH STATEMENT: counts the new messages in states 1-4 into backlog_counts
(backlog_count()).';

--
-- Name: messages messages_backlog_update; Type: TRIGGER
--

CREATE TRIGGER messages_backlog_update AFTER UPDATE ON public.messages REFERENCING OLD TABLE AS backlog_old NEW TABLE AS backlog_new FOR EACH STATEMENT EXECUTE FUNCTION public.backlog_count();

--
-- Name: TRIGGER messages_backlog_update ON messages; Type: COMMENT
--

COMMENT ON TRIGGER messages_backlog_update ON public.messages IS 'AFTER UPDATE, FOR EACH STATEMENT: counts the messages that entered (0 -> 1) or left (4 -> 5)
states 1-4 into backlog_counts (backlog_count()); other updates change no count.';

--
-- Name: messages messages_route_fairness; Type: TRIGGER
--

CREATE TRIGGER messages_route_fairness BEFORE INSERT OR UPDATE OF state ON public.messages FOR EACH ROW WHEN (((new.state = 1) AND (new.route_vtime IS NULL))) EXECUTE FUNCTION public.messages_route_fairness();

--
-- Name: TRIGGER messages_route_fairness ON messages; Type: COMMENT
--

COMMENT ON TRIGGER messages_route_fairness ON public.messages IS 'BEFORE INSERT OR UPDATE OF state, FOR EACH ROW, only when NEW.state = 1 (RECEIVED) and
NEW.route_vtime IS NULL: stamps route_vtime (messages_route_fairness()). It acts on the messages
the router and deliverer generate (auto-replies, DSNs: inserted in state 1) and on streamed
receipts moving 0 -> 1 without a stamp; the listener''s batches arrive stamped, and a reset 2 -> 1
keeps its stamp, so neither fires it. First of the BEFORE triggers (name order).';

--
-- Name: messages messages_state_refuse_insert; Type: TRIGGER
--

CREATE TRIGGER messages_state_refuse_insert BEFORE INSERT ON public.messages FOR EACH ROW WHEN ((new.state <> ALL (ARRAY[0, 1]))) EXECUTE FUNCTION public.messages_state_refuse();

--
-- Name: TRIGGER messages_state_refuse_insert ON messages; Type: COMMENT
--

COMMENT ON TRIGGER messages_state_refuse_insert ON public.messages IS 'BEFORE INSERT, FOR EACH ROW, when NEW.state is not 0 or 1: refuses the row (messages_state_refuse()).
A message is created RECEIVING (0, a body still streaming) or RECEIVED (1, complete).';

--
-- Name: messages messages_state_refuse_move; Type: TRIGGER
--

CREATE TRIGGER messages_state_refuse_move BEFORE UPDATE OF state ON public.messages FOR EACH ROW WHEN (((old.state IS DISTINCT FROM new.state) AND (NOT ((((((((old.state = 0) AND (new.state = 1)) OR ((old.state = 1) AND (new.state = 2))) OR ((old.state = 2) AND (new.state = 3))) OR ((old.state = 3) AND (new.state = 4))) OR ((old.state = 4) AND (new.state = 5))) OR ((old.state = 2) AND (new.state = 1))) OR ((old.state = 4) AND (new.state = 3)))))) EXECUTE FUNCTION public.messages_state_refuse();

--
-- Name: TRIGGER messages_state_refuse_move ON messages; Type: COMMENT
--

COMMENT ON TRIGGER messages_state_refuse_move ON public.messages IS 'BEFORE UPDATE OF state, FOR EACH ROW, when the state changes and (OLD.state, NEW.state) is not
one of msg_transitions'' moves (0,1) (1,2) (2,3) (3,4) (4,5) (2,1) (4,3): refuses the row
(messages_state_refuse()). The state machine''s guard; the list is a constant in the WHEN clause,
so an allowed move costs no function call. Which role may make which move is narrowed further by
the row-level policies on messages.';

--
-- Name: messages messages_state_stamp_insert; Type: TRIGGER
--

CREATE TRIGGER messages_state_stamp_insert BEFORE INSERT ON public.messages FOR EACH ROW WHEN (((new.state = 1) AND (new.received_at IS NULL))) EXECUTE FUNCTION public.messages_state_stamp();

--
-- Name: TRIGGER messages_state_stamp_insert ON messages; Type: COMMENT
--

COMMENT ON TRIGGER messages_state_stamp_insert ON public.messages IS 'BEFORE INSERT, FOR EACH ROW, when NEW.state = 1 and NEW.received_at IS NULL: sets received_at
(messages_state_stamp()), which the CHECK on state 1 requires. Fires for generated messages that
leave it unset; the listener''s batches set it themselves. After the refuse triggers (name order).';

--
-- Name: messages messages_state_stamp_update; Type: TRIGGER
--

CREATE TRIGGER messages_state_stamp_update BEFORE UPDATE OF state ON public.messages FOR EACH ROW WHEN (((old.state IS DISTINCT FROM new.state) AND (NOT (new.state_changed_at IS DISTINCT FROM old.state_changed_at)))) EXECUTE FUNCTION public.messages_state_stamp();

--
-- Name: TRIGGER messages_state_stamp_update ON messages; Type: COMMENT
--

COMMENT ON TRIGGER messages_state_stamp_update ON public.messages IS 'BEFORE UPDATE OF state, FOR EACH ROW, when the state changes and the statement left
state_changed_at unchanged: sets state_changed_at and the new state''s time stamp
(messages_state_stamp()). The hot-path moves of common/pg/transitions.cpp set these columns
themselves and so skip it; the lease resets and holds, operators and psql get stamped here.';

--
-- Name: messages messages_state_wakeup_insert; Type: TRIGGER
--

CREATE TRIGGER messages_state_wakeup_insert AFTER INSERT ON public.messages REFERENCING NEW TABLE AS written FOR EACH STATEMENT WHEN ((current_setting('wsmtp.deferred_wakeup'::text, true) IS DISTINCT FROM 'on'::text)) EXECUTE FUNCTION public.messages_state_wakeup();

--
-- Name: TRIGGER messages_state_wakeup_insert ON messages; Type: COMMENT
--

COMMENT ON TRIGGER messages_state_wakeup_insert ON public.messages IS 'AFTER INSERT, FOR EACH STATEMENT, with the inserted rows as transition table written: wakes the
router or deliverer (messages_state_wakeup()). Skipped (WHEN) in sessions that set
wsmtp.deferred_wakeup = on: the listener''s store connections, which NOTIFY themselves right after
their commit (common/pg/wakeup.cpp), because a NOTIFY inside a transaction serialises commits.
Every other session (router, deliverer, reaper, wsmtpctl, psql) notifies here. A lost wake-up
costs at most one poll interval.';

--
-- Name: messages messages_state_wakeup_update; Type: TRIGGER
--

CREATE TRIGGER messages_state_wakeup_update AFTER UPDATE ON public.messages REFERENCING NEW TABLE AS written FOR EACH STATEMENT WHEN ((current_setting('wsmtp.deferred_wakeup'::text, true) IS DISTINCT FROM 'on'::text)) EXECUTE FUNCTION public.messages_state_wakeup();

--
-- Name: TRIGGER messages_state_wakeup_update ON messages; Type: COMMENT
--

COMMENT ON TRIGGER messages_state_wakeup_update ON public.messages IS 'AFTER UPDATE, FOR EACH STATEMENT, with the new row versions as transition table written: wakes
the router or deliverer (messages_state_wakeup()), unless the session set
wsmtp.deferred_wakeup = on (as messages_state_wakeup_insert). Fires for any update of messages,
not only state changes: a statement that rewrites a RECEIVED or ROUTED row without moving it also
notifies, which costs a worker one empty claim.';

--
-- Name: aliases aliases_domain_fkey; Type: FK CONSTRAINT
--

ALTER TABLE ONLY public.aliases
    ADD CONSTRAINT aliases_domain_fkey FOREIGN KEY (domain) REFERENCES public.domains(name) ON DELETE CASCADE;

--
-- Name: autoreplies autoreplies_address_fkey; Type: FK CONSTRAINT
--

ALTER TABLE ONLY public.autoreplies
    ADD CONSTRAINT autoreplies_address_fkey FOREIGN KEY (address) REFERENCES public.mailboxes(address) ON DELETE CASCADE;

--
-- Name: autoreply_sent autoreply_sent_address_fkey; Type: FK CONSTRAINT
--

ALTER TABLE ONLY public.autoreply_sent
    ADD CONSTRAINT autoreply_sent_address_fkey FOREIGN KEY (address) REFERENCES public.autoreplies(address) ON DELETE CASCADE;

--
-- Name: body_chunks body_chunks_message_id_fkey; Type: FK CONSTRAINT
--

ALTER TABLE ONLY public.body_chunks
    ADD CONSTRAINT body_chunks_message_id_fkey FOREIGN KEY (message_id) REFERENCES public.messages(id) ON DELETE CASCADE;

--
-- Name: catchalls catchalls_domain_fkey; Type: FK CONSTRAINT
--

ALTER TABLE ONLY public.catchalls
    ADD CONSTRAINT catchalls_domain_fkey FOREIGN KEY (domain) REFERENCES public.domains(name) ON DELETE CASCADE;

--
-- Name: deliveries deliveries_message_id_fkey; Type: FK CONSTRAINT
--

ALTER TABLE ONLY public.deliveries
    ADD CONSTRAINT deliveries_message_id_fkey FOREIGN KEY (message_id) REFERENCES public.messages(id) ON DELETE CASCADE;

--
-- Name: list_members list_members_list_address_fkey; Type: FK CONSTRAINT
--

ALTER TABLE ONLY public.list_members
    ADD CONSTRAINT list_members_list_address_fkey FOREIGN KEY (list_address) REFERENCES public.lists(address) ON DELETE CASCADE;

--
-- Name: lists lists_domain_fkey; Type: FK CONSTRAINT
--

ALTER TABLE ONLY public.lists
    ADD CONSTRAINT lists_domain_fkey FOREIGN KEY (domain) REFERENCES public.domains(name) ON DELETE CASCADE;

--
-- Name: mailbox_forwards mailbox_forwards_address_fkey; Type: FK CONSTRAINT
--

ALTER TABLE ONLY public.mailbox_forwards
    ADD CONSTRAINT mailbox_forwards_address_fkey FOREIGN KEY (address) REFERENCES public.mailboxes(address) ON DELETE CASCADE;

--
-- Name: mailboxes mailboxes_domain_fkey; Type: FK CONSTRAINT
--

ALTER TABLE ONLY public.mailboxes
    ADD CONSTRAINT mailboxes_domain_fkey FOREIGN KEY (domain) REFERENCES public.domains(name) ON DELETE CASCADE;

--
-- Name: msg_transitions msg_transitions_from_state_fkey; Type: FK CONSTRAINT
--

ALTER TABLE ONLY public.msg_transitions
    ADD CONSTRAINT msg_transitions_from_state_fkey FOREIGN KEY (from_state) REFERENCES public.msg_states(state);

--
-- Name: msg_transitions msg_transitions_to_state_fkey; Type: FK CONSTRAINT
--

ALTER TABLE ONLY public.msg_transitions
    ADD CONSTRAINT msg_transitions_to_state_fkey FOREIGN KEY (to_state) REFERENCES public.msg_states(state);

--
-- Name: recipients recipients_message_id_fkey; Type: FK CONSTRAINT
--

ALTER TABLE ONLY public.recipients
    ADD CONSTRAINT recipients_message_id_fkey FOREIGN KEY (message_id) REFERENCES public.messages(id) ON DELETE CASCADE;

--
-- Name: relays relays_pool_fkey; Type: FK CONSTRAINT
--

ALTER TABLE ONLY public.relays
    ADD CONSTRAINT relays_pool_fkey FOREIGN KEY (pool) REFERENCES public.relay_pools(name) ON DELETE CASCADE;

--
-- Name: body_chunks admin_all; Type: POLICY
--

CREATE POLICY admin_all ON public.body_chunks TO wsmtp_admin USING (true) WITH CHECK (true);

--
-- Name: POLICY admin_all ON body_chunks; Type: COMMENT
--

COMMENT ON POLICY admin_all ON public.body_chunks IS 'wsmtp_admin (wsmtpctl) may do anything to any body.';

--
-- Name: deliveries admin_all; Type: POLICY
--

CREATE POLICY admin_all ON public.deliveries TO wsmtp_admin USING (true) WITH CHECK (true);

--
-- Name: POLICY admin_all ON deliveries; Type: COMMENT
--

COMMENT ON POLICY admin_all ON public.deliveries IS 'wsmtp_admin (wsmtpctl) may do anything to any delivery.';

--
-- Name: messages admin_all; Type: POLICY
--

CREATE POLICY admin_all ON public.messages TO wsmtp_admin USING (true) WITH CHECK (true);

--
-- Name: POLICY admin_all ON messages; Type: COMMENT
--

COMMENT ON POLICY admin_all ON public.messages IS 'wsmtp_admin (wsmtpctl) may do anything to any message.';

--
-- Name: recipients admin_all; Type: POLICY
--

CREATE POLICY admin_all ON public.recipients TO wsmtp_admin USING (true) WITH CHECK (true);

--
-- Name: POLICY admin_all ON recipients; Type: COMMENT
--

COMMENT ON POLICY admin_all ON public.recipients IS 'wsmtp_admin (wsmtpctl) may do anything to any recipient.';

--
-- Name: body_chunks; Type: ROW SECURITY
--

ALTER TABLE public.body_chunks ENABLE ROW LEVEL SECURITY;

--
-- Name: messages deliver_deliver; Type: POLICY
--

CREATE POLICY deliver_deliver ON public.messages FOR UPDATE TO wsmtp_deliver USING ((state = ANY (ARRAY[3, 4]))) WITH CHECK ((state = ANY (ARRAY[3, 4, 5])));

--
-- Name: POLICY deliver_deliver ON messages; Type: COMMENT
--

COMMENT ON POLICY deliver_deliver ON public.messages IS 'wsmtp_deliver updates messages in states 3 and 4, leaving them in 3, 4 or 5: claim 3 -> 4,
finish 4 -> 5, defer 4 -> 3.';

--
-- Name: messages deliver_generate; Type: POLICY
--

CREATE POLICY deliver_generate ON public.messages FOR INSERT TO wsmtp_deliver WITH CHECK (((state = 1) AND (client_addr IS NULL)));

--
-- Name: POLICY deliver_generate ON messages; Type: COMMENT
--

COMMENT ON POLICY deliver_generate ON public.messages IS 'wsmtp_deliver creates only generated messages (DSNs): state 1, no client address.';

--
-- Name: messages deliver_read; Type: POLICY
--

CREATE POLICY deliver_read ON public.messages FOR SELECT TO wsmtp_deliver USING (true);

--
-- Name: POLICY deliver_read ON messages; Type: COMMENT
--

COMMENT ON POLICY deliver_read ON public.messages IS 'wsmtp_deliver reads every message.';

--
-- Name: deliveries deliver_record; Type: POLICY
--

CREATE POLICY deliver_record ON public.deliveries FOR UPDATE TO wsmtp_deliver USING ((EXISTS ( SELECT 1
   FROM public.messages m
  WHERE ((m.id = deliveries.message_id) AND (m.state = 4))))) WITH CHECK ((EXISTS ( SELECT 1
   FROM public.messages m
  WHERE ((m.id = deliveries.message_id) AND (m.state = 4)))));

--
-- Name: POLICY deliver_record ON deliveries; Type: COMMENT
--

COMMENT ON POLICY deliver_record ON public.deliveries IS 'wsmtp_deliver updates only deliveries of messages in DELIVERING (4), i.e. under a delivery
lease, and only the attempt columns (status, attempts, next_attempt_at, last_error, final_at,
dsn_message_id, spool_offset).';

--
-- Name: deliveries; Type: ROW SECURITY
--

ALTER TABLE public.deliveries ENABLE ROW LEVEL SECURITY;

--
-- Name: deliveries dsn_link; Type: POLICY
--

CREATE POLICY dsn_link ON public.deliveries FOR UPDATE TO wsmtp_router, wsmtp_deliver USING (((status = 'bounced'::text) AND (dsn_message_id IS NULL))) WITH CHECK (((status = 'bounced'::text) AND (dsn_message_id IS NOT NULL)));

--
-- Name: POLICY dsn_link ON deliveries; Type: COMMENT
--

COMMENT ON POLICY dsn_link ON public.deliveries IS 'wsmtp_router and wsmtp_deliver link a bounced, unreported delivery to the DSN that reports it
(dsn_message_id); it stays bounced.';

--
-- Name: body_chunks generators_write; Type: POLICY
--

CREATE POLICY generators_write ON public.body_chunks FOR INSERT TO wsmtp_router, wsmtp_deliver WITH CHECK ((EXISTS ( SELECT 1
   FROM public.messages m
  WHERE ((m.id = body_chunks.message_id) AND (m.state = 1) AND (m.client_addr IS NULL) AND (m.receipt_owner IS NULL)))));

--
-- Name: POLICY generators_write ON body_chunks; Type: COMMENT
--

COMMENT ON POLICY generators_write ON public.body_chunks IS 'wsmtp_router and wsmtp_deliver write chunks only for the messages they generate (state 1, no
client address, no receipt owner).';

--
-- Name: recipients generators_write; Type: POLICY
--

CREATE POLICY generators_write ON public.recipients FOR INSERT TO wsmtp_router, wsmtp_deliver WITH CHECK ((EXISTS ( SELECT 1
   FROM public.messages m
  WHERE ((m.id = recipients.message_id) AND (m.state = 1) AND (m.client_addr IS NULL) AND (m.receipt_owner IS NULL)))));

--
-- Name: POLICY generators_write ON recipients; Type: COMMENT
--

COMMENT ON POLICY generators_write ON public.recipients IS 'wsmtp_router and wsmtp_deliver add recipients only to the messages they generate (state 1, no
client address, no receipt owner).';

--
-- Name: messages listener_commit; Type: POLICY
--

CREATE POLICY listener_commit ON public.messages FOR UPDATE TO wsmtp_listener USING (((state = 0) AND (receipt_owner = SESSION_USER))) WITH CHECK (((state = ANY (ARRAY[0, 1])) AND (receipt_owner = SESSION_USER)));

--
-- Name: POLICY listener_commit ON messages; Type: COMMENT
--

COMMENT ON POLICY listener_commit ON public.messages IS 'wsmtp_listener updates only its own receipts in state 0, leaving them in 0 or 1: the commit
0 -> 1 (column grants: state, size, route_vtime and the time stamps).';

--
-- Name: messages listener_discard; Type: POLICY
--

CREATE POLICY listener_discard ON public.messages FOR DELETE TO wsmtp_listener USING (((state = 0) AND (receipt_owner = SESSION_USER)));

--
-- Name: POLICY listener_discard ON messages; Type: COMMENT
--

COMMENT ON POLICY listener_discard ON public.messages IS 'wsmtp_listener deletes only its own receipts that never completed (state 0).';

--
-- Name: messages listener_read; Type: POLICY
--

CREATE POLICY listener_read ON public.messages FOR SELECT TO wsmtp_listener USING ((receipt_owner = SESSION_USER));

--
-- Name: POLICY listener_read ON messages; Type: COMMENT
--

COMMENT ON POLICY listener_read ON public.messages IS 'wsmtp_listener reads only the messages its own login received (receipt_owner = session_user):
its receipts in progress, and the outcome of a commit whose answer was lost.';

--
-- Name: body_chunks listener_stream; Type: POLICY
--

CREATE POLICY listener_stream ON public.body_chunks FOR INSERT TO wsmtp_listener WITH CHECK ((EXISTS ( SELECT 1
   FROM public.messages m
  WHERE ((m.id = body_chunks.message_id) AND (m.state = 0) AND (m.receipt_owner = SESSION_USER)))));

--
-- Name: POLICY listener_stream ON body_chunks; Type: COMMENT
--

COMMENT ON POLICY listener_stream ON public.body_chunks IS 'wsmtp_listener writes chunks only for its own receipts still in state 0 (a body streaming in).';

--
-- Name: messages; Type: ROW SECURITY
--

ALTER TABLE public.messages ENABLE ROW LEVEL SECURITY;

--
-- Name: body_chunks readers_read; Type: POLICY
--

CREATE POLICY readers_read ON public.body_chunks FOR SELECT TO wsmtp_router, wsmtp_deliver USING (true);

--
-- Name: POLICY readers_read ON body_chunks; Type: COMMENT
--

COMMENT ON POLICY readers_read ON public.body_chunks IS 'wsmtp_router and wsmtp_deliver read every body.';

--
-- Name: messages reaper_delete; Type: POLICY
--

CREATE POLICY reaper_delete ON public.messages FOR DELETE TO wsmtp_reaper USING ((state = ANY (ARRAY[0, 5])));

--
-- Name: POLICY reaper_delete ON messages; Type: COMMENT
--

COMMENT ON POLICY reaper_delete ON public.messages IS 'wsmtp_reaper deletes aborted (0) and finished (5) messages only.';

--
-- Name: deliveries reaper_expire; Type: POLICY
--

CREATE POLICY reaper_expire ON public.deliveries FOR UPDATE TO wsmtp_reaper USING (((status = 'pending'::text) AND (EXISTS ( SELECT 1
   FROM public.messages m
  WHERE ((m.id = deliveries.message_id) AND (m.state = 3)))))) WITH CHECK ((status = 'bounced'::text));

--
-- Name: POLICY reaper_expire ON deliveries; Type: COMMENT
--

COMMENT ON POLICY reaper_expire ON public.deliveries IS 'wsmtp_reaper only bounces pending deliveries of ROUTED messages (expire_queue_lifetime; column
grants: status, final_at, last_error).';

--
-- Name: messages reaper_read; Type: POLICY
--

CREATE POLICY reaper_read ON public.messages FOR SELECT TO wsmtp_reaper USING (true);

--
-- Name: POLICY reaper_read ON messages; Type: COMMENT
--

COMMENT ON POLICY reaper_read ON public.messages IS 'wsmtp_reaper reads every message.';

--
-- Name: messages reaper_reset; Type: POLICY
--

CREATE POLICY reaper_reset ON public.messages FOR UPDATE TO wsmtp_reaper USING (true) WITH CHECK ((state = ANY (ARRAY[1, 2, 3, 4])));

--
-- Name: POLICY reaper_reset ON messages; Type: COMMENT
--

COMMENT ON POLICY reaper_reset ON public.messages IS 'wsmtp_reaper updates any message (its deletions lock their batch FOR UPDATE, which is checked
against the UPDATE policy) but leaves it in 1-4: lease resets 2 -> 1 and 4 -> 3, holds, bounces.';

--
-- Name: recipients; Type: ROW SECURITY
--

ALTER TABLE public.recipients ENABLE ROW LEVEL SECURITY;

--
-- Name: messages router_generate; Type: POLICY
--

CREATE POLICY router_generate ON public.messages FOR INSERT TO wsmtp_router WITH CHECK (((state = 1) AND (client_addr IS NULL)));

--
-- Name: POLICY router_generate ON messages; Type: COMMENT
--

COMMENT ON POLICY router_generate ON public.messages IS 'wsmtp_router creates only generated messages (auto-replies): state 1, no client address.';

--
-- Name: deliveries router_plan; Type: POLICY
--

CREATE POLICY router_plan ON public.deliveries FOR INSERT TO wsmtp_router WITH CHECK ((EXISTS ( SELECT 1
   FROM public.messages m
  WHERE ((m.id = deliveries.message_id) AND (m.state = ANY (ARRAY[2, 3]))))));

--
-- Name: POLICY router_plan ON deliveries; Type: COMMENT
--

COMMENT ON POLICY router_plan ON public.deliveries IS 'wsmtp_router inserts deliveries only for messages in ROUTING (finish_routing) or ROUTED (the list
fan-outs that follow it in the same transaction).';

--
-- Name: messages router_read; Type: POLICY
--

CREATE POLICY router_read ON public.messages FOR SELECT TO wsmtp_router USING (true);

--
-- Name: POLICY router_read ON messages; Type: COMMENT
--

COMMENT ON POLICY router_read ON public.messages IS 'wsmtp_router reads every message.';

--
-- Name: recipients router_read; Type: POLICY
--

CREATE POLICY router_read ON public.recipients FOR SELECT TO wsmtp_router USING (true);

--
-- Name: POLICY router_read ON recipients; Type: COMMENT
--

COMMENT ON POLICY router_read ON public.recipients IS 'wsmtp_router reads every message''s recipients (the claims return them).';

--
-- Name: messages router_route; Type: POLICY
--

CREATE POLICY router_route ON public.messages FOR UPDATE TO wsmtp_router USING ((state = ANY (ARRAY[1, 2]))) WITH CHECK ((state = ANY (ARRAY[1, 2, 3])));

--
-- Name: POLICY router_route ON messages; Type: COMMENT
--

COMMENT ON POLICY router_route ON public.messages IS 'wsmtp_router updates messages in states 1 and 2, leaving them in 1, 2 or 3: claim 1 -> 2,
plan 2 -> 3, failures.';

--
-- Name: deliveries workers_read; Type: POLICY
--

CREATE POLICY workers_read ON public.deliveries FOR SELECT TO wsmtp_router, wsmtp_deliver, wsmtp_reaper USING (true);

--
-- Name: POLICY workers_read ON deliveries; Type: COMMENT
--

COMMENT ON POLICY workers_read ON public.deliveries IS 'wsmtp_router, wsmtp_deliver and wsmtp_reaper read every delivery.';

--
-- Rows of the state machine's tables (fixed since 001)
--

-- msg_states:
--   0 RECEIVING
--   1 RECEIVED
--   2 ROUTING
--   3 ROUTED
--   4 DELIVERING
--   5 DONE
-- msg_transitions:
--   0 -> 1, 1 -> 2, 2 -> 1, 2 -> 3, 3 -> 4, 4 -> 3, 4 -> 5

--
-- Role grants (005 and later; the roles are NOLOGIN groups, created by 005 if missing)
--

REVOKE EXECUTE ON FUNCTION backlog_fold(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION backlog_fold(integer) TO wsmtp_admin;
GRANT EXECUTE ON FUNCTION backlog_fold(integer) TO wsmtp_reaper;
REVOKE EXECUTE ON FUNCTION begin_receipt(bigint,text,text,text,text,text[],text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION begin_receipt(bigint,text,text,text,text,text[],text[]) TO wsmtp_admin;
GRANT EXECUTE ON FUNCTION begin_receipt(bigint,text,text,text,text,text[],text[]) TO wsmtp_listener;
REVOKE EXECUTE ON FUNCTION claim_shard_identity(text,integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION edit_receipt(bigint,text,text[],text,integer,integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION edit_receipt(bigint,text,text[],text,integer,integer) TO wsmtp_admin;
GRANT EXECUTE ON FUNCTION edit_receipt(bigint,text,text[],text,integer,integer) TO wsmtp_listener;
REVOKE EXECUTE ON FUNCTION receive_batch(bigint[],bigint[],text[],text[],text[],text[],bigint[],bigint[],integer[],text[],bigint[],text[],bytea[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION receive_batch(bigint[],bigint[],text[],text[],text[],text[],bigint[],bigint[],integer[],text[],bigint[],text[],bytea[]) TO wsmtp_admin;
REVOKE EXECUTE ON FUNCTION receive_messages(bigint[],text[],text[],text[],text[],text[],bigint[],bigint[],integer[],text[],bigint[],text[],bytea[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION receive_messages(bigint[],text[],text[],text[],text[],text[],bigint[],bigint[],integer[],text[],bigint[],text[],bytea[]) TO wsmtp_admin;
GRANT EXECUTE ON FUNCTION receive_messages(bigint[],text[],text[],text[],text[],text[],bigint[],bigint[],integer[],text[],bigint[],text[],bytea[]) TO wsmtp_listener;
REVOKE EXECUTE ON FUNCTION reserve_message_ids(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION reserve_message_ids(integer) TO wsmtp_admin;
GRANT EXECUTE ON FUNCTION reserve_message_ids(integer) TO wsmtp_listener;
GRANT USAGE ON SCHEMA public TO PUBLIC;
GRANT USAGE ON SCHEMA public TO wsmtp_admin;
GRANT USAGE ON SCHEMA public TO wsmtp_deliver;
GRANT USAGE ON SCHEMA public TO wsmtp_listener;
GRANT USAGE ON SCHEMA public TO wsmtp_reaper;
GRANT USAGE ON SCHEMA public TO wsmtp_router;
GRANT USAGE ON SEQUENCE messages_id_seq TO wsmtp_listener;
GRANT SELECT, INSERT, UPDATE, DELETE ON aliases TO wsmtp_admin;
GRANT SELECT (address) ON aliases TO wsmtp_listener;
GRANT SELECT ON aliases TO wsmtp_router;
GRANT SELECT, INSERT, UPDATE, DELETE ON auth_users TO wsmtp_admin;
GRANT SELECT (username, password_hash, disabled) ON auth_users TO wsmtp_listener;
GRANT SELECT, INSERT, UPDATE, DELETE ON autoreplies TO wsmtp_admin;
GRANT SELECT ON autoreplies TO wsmtp_router;
GRANT SELECT, INSERT, UPDATE, DELETE ON autoreply_sent TO wsmtp_admin;
GRANT SELECT, INSERT, UPDATE ON autoreply_sent TO wsmtp_router;
GRANT SELECT, INSERT, UPDATE, DELETE ON backlog_counts TO wsmtp_admin;
GRANT SELECT ON backlog_counts TO wsmtp_listener;
GRANT SELECT ON backlog_counts TO wsmtp_reaper;
GRANT SELECT, INSERT, UPDATE, DELETE ON body_chunks TO wsmtp_admin;
GRANT SELECT, INSERT ON body_chunks TO wsmtp_deliver;
GRANT INSERT ON body_chunks TO wsmtp_listener;
GRANT SELECT, INSERT ON body_chunks TO wsmtp_router;
GRANT SELECT, INSERT, UPDATE, DELETE ON catchalls TO wsmtp_admin;
GRANT SELECT (domain) ON catchalls TO wsmtp_listener;
GRANT SELECT ON catchalls TO wsmtp_router;
GRANT SELECT, INSERT, UPDATE, DELETE ON deliveries TO wsmtp_admin;
GRANT SELECT ON deliveries TO wsmtp_deliver;
GRANT UPDATE (status, attempts, next_attempt_at, last_error, final_at, dsn_message_id, spool_offset) ON deliveries TO wsmtp_deliver;
GRANT SELECT ON deliveries TO wsmtp_reaper;
GRANT UPDATE (status, last_error, final_at) ON deliveries TO wsmtp_reaper;
GRANT SELECT, INSERT ON deliveries TO wsmtp_router;
GRANT UPDATE (dsn_message_id) ON deliveries TO wsmtp_router;
GRANT SELECT, INSERT, UPDATE, DELETE ON destination_backoff TO wsmtp_admin;
GRANT SELECT, INSERT, UPDATE, DELETE ON destination_backoff TO wsmtp_deliver;
GRANT SELECT, INSERT, UPDATE, DELETE ON domains TO wsmtp_admin;
GRANT SELECT ON domains TO wsmtp_deliver;
GRANT SELECT (name, recipient_delimiter) ON domains TO wsmtp_listener;
GRANT SELECT ON domains TO wsmtp_router;
GRANT SELECT, INSERT, UPDATE, DELETE ON list_members TO wsmtp_admin;
GRANT SELECT ON list_members TO wsmtp_router;
GRANT SELECT, INSERT, UPDATE, DELETE ON lists TO wsmtp_admin;
GRANT SELECT (address) ON lists TO wsmtp_listener;
GRANT SELECT ON lists TO wsmtp_router;
GRANT SELECT, INSERT, UPDATE, DELETE ON mailbox_forwards TO wsmtp_admin;
GRANT SELECT ON mailbox_forwards TO wsmtp_router;
GRANT SELECT, INSERT, UPDATE, DELETE ON mailboxes TO wsmtp_admin;
GRANT SELECT ON mailboxes TO wsmtp_deliver;
GRANT UPDATE (over_quota_seen) ON mailboxes TO wsmtp_deliver;
GRANT SELECT (address, over_quota_seen) ON mailboxes TO wsmtp_listener;
GRANT SELECT ON mailboxes TO wsmtp_router;
GRANT SELECT, INSERT, UPDATE, DELETE ON messages TO wsmtp_admin;
GRANT INSERT (state, envelope_from, client_addr, client_helo, received_by, size, received_at) ON messages TO wsmtp_deliver;
GRANT SELECT ON messages TO wsmtp_deliver;
GRANT UPDATE (state, routing_at, routed_at, delivering_at, done_at, state_changed_at, next_attempt_at, lease_owner, lease_token, lease_expires, expired_claims, held, held_reason, delay_warned_at) ON messages TO wsmtp_deliver;
GRANT SELECT, DELETE ON messages TO wsmtp_listener;
GRANT UPDATE (state, size, received_at, state_changed_at, route_vtime) ON messages TO wsmtp_listener;
GRANT SELECT, DELETE ON messages TO wsmtp_reaper;
GRANT UPDATE (state, routing_at, routed_at, delivering_at, done_at, state_changed_at, next_attempt_at, lease_owner, lease_token, lease_expires, expired_claims, held, held_reason) ON messages TO wsmtp_reaper;
GRANT INSERT (state, envelope_from, client_addr, client_helo, received_by, size, received_at) ON messages TO wsmtp_router;
GRANT SELECT ON messages TO wsmtp_router;
GRANT UPDATE (state, routing_at, routed_at, delivering_at, done_at, state_changed_at, next_attempt_at, lease_owner, lease_token, lease_expires, expired_claims, held, held_reason, last_error, routing_failures) ON messages TO wsmtp_router;
GRANT SELECT, INSERT, UPDATE, DELETE ON msg_states TO wsmtp_admin;
GRANT SELECT ON msg_states TO wsmtp_deliver;
GRANT SELECT ON msg_states TO wsmtp_listener;
GRANT SELECT ON msg_states TO wsmtp_reaper;
GRANT SELECT ON msg_states TO wsmtp_router;
GRANT SELECT, INSERT, UPDATE, DELETE ON msg_transitions TO wsmtp_admin;
GRANT SELECT ON msg_transitions TO wsmtp_deliver;
GRANT SELECT ON msg_transitions TO wsmtp_listener;
GRANT SELECT ON msg_transitions TO wsmtp_reaper;
GRANT SELECT ON msg_transitions TO wsmtp_router;
GRANT SELECT, INSERT, UPDATE, DELETE ON recipients TO wsmtp_admin;
GRANT INSERT ON recipients TO wsmtp_deliver;
GRANT SELECT, INSERT ON recipients TO wsmtp_router;
GRANT SELECT, INSERT, UPDATE, DELETE ON relay_pools TO wsmtp_admin;
GRANT SELECT ON relay_pools TO wsmtp_deliver;
GRANT SELECT ON relay_pools TO wsmtp_router;
GRANT SELECT, INSERT, UPDATE, DELETE ON relays TO wsmtp_admin;
GRANT SELECT ON relays TO wsmtp_deliver;
GRANT UPDATE (down_until, last_error) ON relays TO wsmtp_deliver;
GRANT SELECT, INSERT, UPDATE, DELETE ON route_fairness TO wsmtp_admin;
GRANT SELECT, INSERT, UPDATE ON route_fairness TO wsmtp_deliver;
GRANT SELECT, INSERT, UPDATE ON route_fairness TO wsmtp_listener;
GRANT SELECT, INSERT, UPDATE, DELETE ON route_fairness TO wsmtp_router;
GRANT SELECT, INSERT, UPDATE, DELETE ON schema_version TO wsmtp_admin;
GRANT SELECT ON schema_version TO wsmtp_deliver;
GRANT SELECT ON schema_version TO wsmtp_listener;
GRANT SELECT ON schema_version TO wsmtp_reaper;
GRANT SELECT ON schema_version TO wsmtp_router;
GRANT SELECT, INSERT, UPDATE, DELETE ON shard_identity TO wsmtp_admin;
GRANT SELECT ON shard_identity TO wsmtp_deliver;
GRANT SELECT ON shard_identity TO wsmtp_listener;
GRANT SELECT ON shard_identity TO wsmtp_reaper;
GRANT SELECT ON shard_identity TO wsmtp_router;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, USAGE ON SEQUENCES TO wsmtp_admin;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO wsmtp_admin;

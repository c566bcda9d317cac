-- Wake-ups without serialising commits. A NOTIFY issued inside a transaction
-- takes one cluster-wide lock at commit and holds it through the WAL flush, so
-- every committing transaction that notifies waits for all the others: the
-- listener's, the router's and the deliverer's commits all queued behind each
-- other, one flush at a time (measured: ~250 commits/s at 1 or 20 clients;
-- without the NOTIFY, 20 clients reach ~2,200/s on the same machine).
--
-- A session that sets wsmtp.deferred_wakeup = on takes over the wake-up: the
-- trigger stays silent and the program sends the NOTIFY itself right after its
-- commit, in a tiny asynchronous-commit transaction that holds that lock for
-- microseconds (common/pg/wakeup.cpp). Every other session (wsmtpctl, psql,
-- the tests) keeps the notification inside the transaction as before. A lost
-- wake-up costs at most one poll interval: workers poll as well.
CREATE OR REPLACE FUNCTION messages_state_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.state <> 0 AND NEW.state <> 1 THEN
            RAISE EXCEPTION 'message % cannot be created in state %', NEW.id, NEW.state
                USING ERRCODE = 'check_violation';
        END IF;
        IF NEW.state = 1 AND NEW.received_at IS NULL THEN
            NEW.received_at := now();
        END IF;
    ELSIF NEW.state IS DISTINCT FROM OLD.state THEN
        IF NOT EXISTS (SELECT 1 FROM msg_transitions
                       WHERE from_state = OLD.state AND to_state = NEW.state) THEN
            RAISE EXCEPTION 'message %: transition % -> % is not allowed', OLD.id, OLD.state, NEW.state
                USING ERRCODE = 'check_violation';
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
    ELSE
        RETURN NEW;
    END IF;
    IF current_setting('wsmtp.deferred_wakeup', true) IS DISTINCT FROM 'on' THEN
        IF NEW.state = 1 THEN
            PERFORM pg_notify('wsmtp_route', '');
        ELSIF NEW.state = 3 THEN
            PERFORM pg_notify('wsmtp_deliver', '');
        END IF;
    END IF;
    RETURN NEW;
END;
$$;

-- Fairness clocks without a lock held through a commit. The trigger of 003
-- advances the sender's and client's clocks inside the receiving transaction,
-- so that row stays locked until the commit's WAL flush is done: every
-- listener receiving from the same sender (or the same client) then commits
-- one after the other. The listener instead stamps a whole batch first, in a
-- short transaction of its own with asynchronous commit, and stores the
-- messages with route_vtime set (the trigger leaves a set stamp alone). A stamp
-- lost in a crash only means a clock that moved less: a scheduling hint.
-- Keys are locked sender keys first, each group in sorted order, so batches and
-- the trigger (sender, then client) never wait on each other in a cycle.
-- Returns one stamp per message, in the order given; clients may hold ''.
CREATE FUNCTION route_fair_stamp(senders text[], clients text[]) RETURNS bigint[] LANGUAGE plpgsql AS $$
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

-- Step 1 of storing a batch of small, complete messages: their ids (taken up
-- front so that a commit whose answer is lost can be checked by id) and their
-- fair-order stamps, one row per message in the order given.
CREATE FUNCTION receive_batch_begin(senders text[], clients text[])
RETURNS TABLE (id bigint, route_vtime bigint) LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
        SELECT nextval(pg_get_serial_sequence('messages', 'id')), s.stamp
        FROM unnest(route_fair_stamp(senders, clients)) WITH ORDINALITY AS s(stamp, ord)
        ORDER BY s.ord;
END;
$$;

-- Step 2: the messages, their recipients and bodies, created directly in state
-- 1 (RECEIVED) by one statement, so a batch costs one round trip and one commit
-- however many messages it holds. State 0 exists for bodies streamed over
-- several transactions; a message that arrived whole has nothing to show in it.
-- SECURITY DEFINER because row-level security admits a listener's body only
-- for a message it can already see, which a single statement cannot offer; the
-- function is the gate instead: it only creates new messages (a reused id
-- fails on the primary key) and the listener role is the only one allowed to
-- call it. Recipients are given flat: (message ordinal, seq, address).
CREATE FUNCTION receive_batch(ids bigint[], stamps bigint[], senders text[], clients text[], helos text[],
                              received_by text[], sizes bigint[], rcpt_ord bigint[], rcpt_seq int[],
                              rcpt_addr text[], bodies bytea[])
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    created bigint;
BEGIN
    -- PL/pgSQL, not SQL: it keeps the statement's plan for the session
    -- (measured ~25% more single-message batches per second than LANGUAGE sql).
    WITH input AS (
        SELECT * FROM unnest(ids, stamps, senders, clients, helos, received_by, sizes, bodies)
                      WITH ORDINALITY AS i(id, stamp, sender, client, helo, by, size, body, ord)),
    m AS (
        INSERT INTO messages (id, state, envelope_from, client_addr, client_helo, received_by, size, route_vtime)
        OVERRIDING SYSTEM VALUE
        SELECT i.id, 1, i.sender, NULLIF(i.client, '')::inet, i.helo, i.by, i.size, i.stamp FROM input AS i
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
    EXECUTE format('ALTER FUNCTION receive_batch(bigint[], bigint[], text[], text[], text[], text[], bigint[], '
                   'bigint[], int[], text[], bytea[]) SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('GRANT USAGE ON SEQUENCE %s TO wsmtp_listener', pg_get_serial_sequence('messages', 'id'));
END;
$$;
REVOKE EXECUTE ON FUNCTION receive_batch(bigint[], bigint[], text[], text[], text[], text[], bigint[], bigint[], int[],
                                         text[], bytea[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION receive_batch(bigint[], bigint[], text[], text[], text[], text[], bigint[], bigint[], int[],
                                        text[], bytea[]) TO wsmtp_listener, wsmtp_admin;

-- A small message's body (one chunk of a few KiB) stays in the table's own
-- row instead of being cut into ~2 KiB TOAST pieces with their own index
-- entries: one tuple written per message instead of four. Larger chunks are
-- still moved out of line (uncompressed: STORAGE EXTERNAL, set in 001).
ALTER TABLE body_chunks SET (toast_tuple_target = 8160);

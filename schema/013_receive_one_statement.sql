-- 013: a batch of whole messages is stored by one statement, not two.
--
-- Since 009 the listener first took each message's id and fair-order stamp in
-- a short transaction of its own (receive_batch_begin), then stored the batch.
-- That first step cost more than it saved: a round trip and a transaction per
-- batch, a catalog lookup per id, and four store connections updating the same
-- clock rows at once. Measured on 2 cores, 10,000 messages of 4 KiB over 20
-- SMTP sessions into the listener alone (durable commits, journaled ext4):
-- 4.7-5.7 s and 3.4-3.9 s of PostgreSQL CPU with it, 3.9-4.0 s and 2.4 s
-- without.
--
-- Ids: the listener reserves a block of them ahead (reserve_message_ids, one
-- statement per 64 messages), so it still knows a batch's ids before the
-- commit and can ask about them if the commit's answer is lost. Ids of one
-- listener connection's block are not in arrival order with another's; nothing
-- orders by id alone (the router's order is route_vtime, then id).
--
-- Stamps: taken inside the storing statement (receive_messages), so the
-- sender's and the client's clock rows stay locked until that commit is
-- flushed. Within one listener process whole messages are committed one batch
-- at a time anyway (listener/commit_gate.h), so nothing waits there; between
-- listener processes, batches with a sender or client in common commit one
-- after the other, one WAL flush each (well under a millisecond here), which
-- still lets one sender or client through at thousands of messages a second.
-- Streamed messages already work this way when the trigger stamps them.
--
-- receive_batch_begin and receive_batch stay: a listener of the previous
-- release keeps working during a rolling upgrade, and receive_messages stores
-- through receive_batch.

CREATE FUNCTION reserve_message_ids(n int) RETURNS SETOF bigint LANGUAGE sql AS $$
    SELECT nextval(s.seq)
    FROM (SELECT pg_get_serial_sequence('messages', 'id')::regclass AS seq) AS s, generate_series(1, n)
$$;

CREATE FUNCTION receive_messages(ids bigint[], senders text[], clients text[], helos text[], received_by text[],
                                 sizes bigint[], rcpt_ord bigint[], rcpt_seq int[], rcpt_addr text[], bodies bytea[])
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    IF cardinality(ids) > 1000 THEN
        RAISE EXCEPTION 'receive_messages: % messages in one batch (at most 1000)', cardinality(ids)
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    RETURN receive_batch(ids, route_fair_stamp(senders, clients), senders, clients, helos, received_by, sizes,
                         rcpt_ord, rcpt_seq, rcpt_addr, bodies);
END;
$$;

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION receive_messages(bigint[], text[], text[], text[], text[], bigint[], bigint[], '
                   'int[], text[], bytea[]) SET search_path = %I, pg_temp', current_schema());
END;
$$;
REVOKE EXECUTE ON FUNCTION receive_messages(bigint[], text[], text[], text[], text[], bigint[], bigint[], int[], text[],
                                            bytea[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION receive_messages(bigint[], text[], text[], text[], text[], bigint[], bigint[], int[], text[],
                                           bytea[]) TO wsmtp_listener, wsmtp_admin;
REVOKE EXECUTE ON FUNCTION reserve_message_ids(int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION reserve_message_ids(int) TO wsmtp_listener, wsmtp_admin;


-- A clock's advance, now run for every batch inside the storing statement, in
-- PL/pgSQL: as a LANGUAGE sql function its INSERT was planned again on every
-- call (measured: a seventh of PostgreSQL's CPU while receiving); PL/pgSQL
-- keeps the plan for the session. Same statement, same result.
CREATE OR REPLACE FUNCTION route_fair_advance(key text, at bigint, step bigint) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    base bigint;
BEGIN
    INSERT INTO route_fairness AS f (fair_key, next_vtime) VALUES (key, at + step)
    ON CONFLICT (fair_key) DO UPDATE SET next_vtime = greatest(f.next_vtime, at) + step
    RETURNING f.next_vtime - step INTO base;
    RETURN base;
END;
$$;

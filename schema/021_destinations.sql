-- 021: per-destination concurrency and destination backoff (issue 16).
--
-- A destination is a delivery's (transport, destination): a relay pool, an
-- LMTP server, a Maildir, an mbox spool. One that accepts TCP and never
-- answers used to hold every deliverer worker for the SMTP timeouts, because
-- every worker's claim included its mail.
--
-- Concurrency: a worker delivers to a destination only while it holds one of
-- the destination's slots, a session-level advisory lock on its own
-- connection (two-int form: destination_slot_class, destination_slot_base +
-- slot number). A worker that dies loses its connection and so its slots; no
-- row can be left behind. The claim reads pg_locks once per statement
-- (saturated_destinations) and skips deliveries whose destination has every
-- slot held. Two destinations whose keys collide in hashtext share slots: a
-- tighter limit for both, never a looser one.
--
-- Backoff: destination_backoff counts a destination's consecutive failures as
-- a whole (no relay of a pool reachable, an LMTP server unreachable or timing
-- out, a mailbox directory unwritable: never one message's fault, never a
-- full mailbox). Past [deliver] destination_backoff_after of them the claim
-- skips the destination until backoff_until; a success deletes the row.
CREATE TABLE destination_backoff (
    transport text NOT NULL,
    destination text NOT NULL,
    failures integer NOT NULL,
    backoff_until timestamptz,
    last_error text,
    failed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (transport, destination)
);

CREATE FUNCTION destination_slot_class(transport text, destination text) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT hashtext(transport || ':' || destination) $$;

CREATE FUNCTION destination_slot_base(transport text) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT 65536 * CASE transport WHEN 'relay' THEN 1 WHEN 'lmtp' THEN 2 WHEN 'maildir' THEN 3
                                        WHEN 'mbox' THEN 4 ELSE 5 END $$;

-- The key saturated_destinations reports: pg_locks shows the class as an oid
-- (unsigned) and the slot's objid, whose upper half is the transport code.
CREATE FUNCTION destination_slot_key(transport text, destination text) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT destination_slot_class(transport, destination)::oid::bigint * 16
                 + destination_slot_base(transport) / 65536 $$;

CREATE FUNCTION saturated_destinations(transports text[], limits integer[]) RETURNS bigint[]
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

GRANT SELECT, INSERT, UPDATE, DELETE ON destination_backoff TO wsmtp_deliver;
GRANT SELECT, INSERT, UPDATE, DELETE ON destination_backoff TO wsmtp_admin;

COMMENT ON TABLE destination_backoff IS
$$Destinations (transport, destination) that failed as a whole: failures in a row, and until when
the deliverer's claim skips them (NULL: not yet backed off). Written by wdeliver; a success
deletes the row (021).$$;
COMMENT ON FUNCTION destination_slot_class(text, text) IS
$$First key of a destination's concurrency slots (session advisory locks held by deliverer workers) (021).$$;
COMMENT ON FUNCTION destination_slot_base(text) IS
$$Second key of a destination's slot 0: 65536 times its transport's code; slot i adds i (021).$$;
COMMENT ON FUNCTION destination_slot_key(text, text) IS
$$A destination's key as saturated_destinations reports it (021).$$;
COMMENT ON FUNCTION saturated_destinations(text[], integer[]) IS
$$Keys of the destinations whose transport's limit of slots (limits, by transports) are all held
in this database, read from pg_locks (021).$$;

-- 023: the queue group (issue 17). A database of the group is the directory
-- (domains, mailboxes, aliases, lists, users, relay pools), a queue shard
-- (messages, recipients, bodies, deliveries and their state), or both (the
-- one-server layout). Every database gets the whole schema; a shard's
-- directory tables and the directory's queue tables simply stay empty.
--
-- A shard knows who it is: shard_identity holds its name and id, written once
-- by `wsmtpctl db migrate` (claim_shard_identity) from the configuration's
-- [shard NAME] section. Every program compares it with its configuration at
-- connect, so a conninfo pointing at the wrong database, or a promoted standby
-- of another shard, is refused rather than filled with mail under the wrong
-- ids. Claiming also confines the messages id sequence to the shard's range
-- (id·10^14 + 1 .. (id+1)·10^14 − 1): queue ids are unique across the group and
-- name their shard (common/queue_id.h). Shard 0's range holds every id issued
-- before this migration, so the one-server layout keeps its ids.
CREATE TABLE shard_identity (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    name text NOT NULL CHECK (name ~ '^[A-Za-z0-9_-]{1,63}$'),
    shard_id integer NOT NULL CHECK (shard_id BETWEEN 0 AND 92000),
    claimed_at timestamptz NOT NULL DEFAULT now()
);

GRANT SELECT ON shard_identity TO wsmtp_listener, wsmtp_router, wsmtp_deliver, wsmtp_reaper, wsmtp_admin;

CREATE FUNCTION claim_shard_identity(p_name text, p_id integer) RETURNS void
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

REVOKE EXECUTE ON FUNCTION claim_shard_identity(text, integer) FROM PUBLIC;

COMMENT ON TABLE shard_identity IS 'This database''s name and id as a queue shard, claimed once by wsmtpctl db migrate
(claim_shard_identity); empty in a database that is only the directory. Programs refuse
a shard whose identity is not the configured one.';
COMMENT ON FUNCTION claim_shard_identity(text, integer) IS 'Writes this database''s shard identity on first call and confines messages_id_seq to
the id''s range (id*10^14+1 .. (id+1)*10^14-1); later calls check the id (a rename is
allowed). Refuses an id that differs from the one claimed, and a database whose messages
are outside the range.';

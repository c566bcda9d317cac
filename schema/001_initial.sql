-- 001: the queue (messages, recipients, body chunks, deliveries), the state machine
-- (states and allowed transitions, enforced by a trigger) and the directory
-- (domains, mailboxes, aliases). The migrator runs this inside one transaction.

CREATE TABLE msg_states (
    state smallint PRIMARY KEY CHECK (state BETWEEN 0 AND 5),
    name  text NOT NULL UNIQUE
);
INSERT INTO msg_states VALUES
    (0, 'RECEIVING'), (1, 'RECEIVED'), (2, 'ROUTING'),
    (3, 'ROUTED'), (4, 'DELIVERING'), (5, 'DONE');

-- Every state change must be one of these pairs; the trigger below refuses the rest.
-- 2->1 and 4->3 are the stale-lease resets (reaper, operator); 4->3 is also the
-- "some deliveries deferred" return.
CREATE TABLE msg_transitions (
    from_state smallint NOT NULL REFERENCES msg_states,
    to_state   smallint NOT NULL REFERENCES msg_states,
    PRIMARY KEY (from_state, to_state)
);
INSERT INTO msg_transitions VALUES (0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (2, 1), (4, 3);

CREATE TABLE messages (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    state            smallint NOT NULL DEFAULT 0 REFERENCES msg_states CHECK (state BETWEEN 0 AND 5),
    envelope_from    text NOT NULL,              -- '' is the null sender <>
    client_addr      inet,
    client_helo      text NOT NULL DEFAULT '',
    received_by      text NOT NULL DEFAULT '',   -- listener identity (host:pid)
    size             bigint NOT NULL DEFAULT 0 CHECK (size >= 0),
    created_at       timestamptz NOT NULL DEFAULT now(),   -- state 0
    received_at      timestamptz,                           -- state 1
    routing_at       timestamptz,                           -- state 2
    routed_at        timestamptz,                           -- state 3
    delivering_at    timestamptz,                           -- state 4
    done_at          timestamptz,                           -- state 5
    state_changed_at timestamptz NOT NULL DEFAULT now(),
    -- earliest time a delivery of this message may be attempted (state 3)
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_owner      text,
    lease_token      uuid,
    lease_expires    timestamptz,
    -- how many times a claim on this message expired without being finished;
    -- past the configured limit the message is held (crash loop / poison message)
    expired_claims   integer NOT NULL DEFAULT 0 CHECK (expired_claims >= 0),
    held             boolean NOT NULL DEFAULT false,
    held_reason      text,
    last_error       text,
    CHECK ((lease_owner IS NULL) = (lease_token IS NULL)),
    CHECK ((lease_token IS NULL) = (lease_expires IS NULL)),
    CHECK (state <> 1 OR received_at IS NOT NULL)
);

-- Claim queries: fresh work per state, in arrival order, skipping held messages.
CREATE INDEX messages_route_queue ON messages (received_at, id) WHERE state = 1 AND NOT held;
CREATE INDEX messages_deliver_queue ON messages (next_attempt_at, id) WHERE state = 3 AND NOT held;
-- Expired leases (states 2 and 4) and reaper scans by state and age.
CREATE INDEX messages_leases ON messages (lease_expires) WHERE lease_expires IS NOT NULL;
CREATE INDEX messages_state_age ON messages (state, state_changed_at);

CREATE TABLE recipients (
    message_id bigint NOT NULL REFERENCES messages ON DELETE CASCADE,
    seq        integer NOT NULL CHECK (seq >= 0),
    address    text NOT NULL,
    PRIMARY KEY (message_id, seq)
);

-- The body in chunks, in order: written as it arrives, read back chunk by chunk,
-- so neither side ever holds a whole message in memory.
CREATE TABLE body_chunks (
    message_id bigint NOT NULL REFERENCES messages ON DELETE CASCADE,
    seq        integer NOT NULL CHECK (seq >= 0),
    data       bytea NOT NULL,
    PRIMARY KEY (message_id, seq)
);
ALTER TABLE body_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE TABLE deliveries (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id       bigint NOT NULL REFERENCES messages ON DELETE CASCADE,
    recipient        text NOT NULL,          -- final recipient
    original_rcpt    text NOT NULL,          -- the envelope recipient it came from
    transport        text NOT NULL CHECK (transport <> ''),
    destination      text NOT NULL,          -- Maildir path, spool path or relay pool
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'bounced')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    final_at         timestamptz,
    CHECK ((status = 'pending') = (final_at IS NULL)),
    UNIQUE (message_id, recipient, transport, destination)
);
CREATE INDEX deliveries_pending ON deliveries (message_id) WHERE status = 'pending';

-- The directory.
CREATE TABLE domains (
    name       text PRIMARY KEY CHECK (name = lower(name) AND name <> ''),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE mailboxes (
    address    text PRIMARY KEY CHECK (address = lower(address)),
    domain     text NOT NULL REFERENCES domains ON DELETE CASCADE,
    maildir    text NOT NULL CHECK (maildir LIKE '/%'),
    transport  text NOT NULL DEFAULT 'maildir',
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (address LIKE '%@' || domain)
);

CREATE TABLE aliases (
    address    text NOT NULL CHECK (address = lower(address)),
    domain     text NOT NULL REFERENCES domains ON DELETE CASCADE,
    target     text NOT NULL CHECK (target <> ''),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (address, target),
    CHECK (address LIKE '%@' || domain)
);

-- The state machine, enforced: refuse any move not in msg_transitions, stamp the
-- time of each state, and wake the workers of the next stage. NOTIFY carries no
-- data and is delivered at commit, so a worker never sees uncommitted work.
CREATE FUNCTION messages_state_guard() RETURNS trigger LANGUAGE plpgsql AS $$
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
    IF NEW.state = 1 THEN
        PERFORM pg_notify('wsmtp_route', '');
    ELSIF NEW.state = 3 THEN
        PERFORM pg_notify('wsmtp_deliver', '');
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER messages_state_guard
    BEFORE INSERT OR UPDATE OF state ON messages
    FOR EACH ROW EXECUTE FUNCTION messages_state_guard();

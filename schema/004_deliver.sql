-- 004: what the delivery agent keeps beyond the queue of 001: DSN bookkeeping
-- (which generated message reported a bounced delivery, whether a delay warning
-- went out) and the relay pools with their weighted relays and down-marks,
-- shared by every wdeliver on every host. The migrator runs this in one transaction.

-- The DSN (a generated message, state 1) that reported this bounced delivery.
-- No foreign key: the reaper may delete the DSN before the original (they have
-- independent retention), and the id is bookkeeping, not a reference to follow.
-- Set in the transaction that moves the message to DONE, so "bounced and not yet
-- reported" is exactly "status = 'bounced' AND dsn_message_id IS NULL".
ALTER TABLE deliveries ADD COLUMN dsn_message_id bigint;

-- When the one delay warning (RFC 3464 Action: delayed) for this message was
-- queued; NULL while none was sent. One per message, never repeated.
ALTER TABLE messages ADD COLUMN delay_warned_at timestamptz;

-- A named group of outbound relays (Sendmail's smart hosts). Deliveries with
-- transport 'relay' name their pool in deliveries.destination.
CREATE TABLE relay_pools (
    name        text PRIMARY KEY CHECK (name <> ''),
    -- none: never STARTTLS; opportunistic: STARTTLS when offered, without
    -- verification; required: STARTTLS with a verified certificate or defer.
    tls_policy  text NOT NULL DEFAULT 'opportunistic'
                CHECK (tls_policy IN ('none', 'opportunistic', 'required')),
    -- What to do with an 8-bit message when the relay lacks 8BITMIME (RFC 6152):
    -- 'bounce' fails it with 5.6.3; 'send' passes it unchanged (many relays accept it).
    eightbit_policy text NOT NULL DEFAULT 'bounce' CHECK (eightbit_policy IN ('bounce', 'send')),
    -- Messages carried by one connection before it is closed and a relay chosen again.
    max_messages_per_connection integer NOT NULL DEFAULT 100 CHECK (max_messages_per_connection > 0),
    -- How long a relay that refused us or answered 4xx to the greeting stays out of rotation.
    down_time   interval NOT NULL DEFAULT '60 seconds' CHECK (down_time >= '0 seconds'),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE relays (
    pool        text NOT NULL REFERENCES relay_pools ON DELETE CASCADE,
    host        text NOT NULL CHECK (host <> ''),
    port        integer NOT NULL DEFAULT 25 CHECK (port BETWEEN 1 AND 65535),
    -- Share of the pool's connections: a relay of weight 3 gets three times the
    -- connections of a relay of weight 1. 0 keeps it configured but unused.
    weight      integer NOT NULL DEFAULT 1 CHECK (weight >= 0),
    -- Out of rotation until then (connection refused, 4xx greeting, TLS failure);
    -- written by any deliverer, read by all.
    down_until  timestamptz,
    last_error  text,
    PRIMARY KEY (pool, host, port)
);

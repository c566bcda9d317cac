-- 003: the router's rule book and its queue bookkeeping. Plus-addressing
-- delimiter and catch-all per domain, forwarding of mailboxes, mailing lists
-- (members, posting policy, list headers, bounce address), auto-replies with
-- their once-per-sender memory, per-delivery list headers and envelope sender
-- for the deliverer, the routing-failure counter, and the fair claim order.

-- Text that ends up inside a header or an envelope: no control characters, so a
-- directory value can never inject a header line or an SMTP command.
CREATE FUNCTION wsmtp_clean_text(t text) RETURNS boolean LANGUAGE sql IMMUTABLE AS
$$ SELECT t !~ '[\x01-\x1f\x7f]' $$;

-- user+tag@domain -> user@domain; '' turns plus-addressing off for the domain.
ALTER TABLE domains ADD COLUMN recipient_delimiter text NOT NULL DEFAULT '+'
    CHECK (length(recipient_delimiter) <= 1 AND recipient_delimiter !~ '[@"\s\\]');

-- Mail for an unknown address of the domain goes to target (an address,
-- expanded like any recipient) instead of bouncing.
CREATE TABLE catchalls (
    domain     text PRIMARY KEY REFERENCES domains ON DELETE CASCADE,
    target     text NOT NULL CHECK (target LIKE '%_@_%' AND wsmtp_clean_text(target)),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Forwarding of a mailbox: its mail goes to the targets, and also to the mailbox
-- itself when forward_keep_copy is set.
ALTER TABLE mailboxes ADD COLUMN forward_keep_copy boolean NOT NULL DEFAULT false;
CREATE TABLE mailbox_forwards (
    address    text NOT NULL REFERENCES mailboxes ON DELETE CASCADE,
    target     text NOT NULL CHECK (target LIKE '%_@_%' AND wsmtp_clean_text(target)),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (address, target)
);

-- Mailing lists (RFC 2369, RFC 2919). posting_policy: 'anyone', 'members'
-- (others bounce), 'moderated' (posts from anyone but the owner go to the owner).
-- List mail leaves with bounce_address as its envelope sender.
CREATE TABLE lists (
    address        text PRIMARY KEY CHECK (address = lower(address)),
    domain         text NOT NULL REFERENCES domains ON DELETE CASCADE,
    owner          text NOT NULL CHECK (owner LIKE '%_@_%' AND wsmtp_clean_text(owner)),
    bounce_address text NOT NULL CHECK (bounce_address LIKE '%_@_%' AND wsmtp_clean_text(bounce_address)),
    posting_policy text NOT NULL DEFAULT 'members' CHECK (posting_policy IN ('anyone', 'members', 'moderated')),
    list_id        text NOT NULL CHECK (list_id ~ '^[A-Za-z0-9!#$%&''*+/=?^_`{|}~.-]+$'),   -- RFC 2919 list-id
    description    text NOT NULL DEFAULT '' CHECK (wsmtp_clean_text(description) AND description !~ '[<>]'),
    unsubscribe    text NOT NULL DEFAULT '' CHECK (wsmtp_clean_text(unsubscribe)),      -- List-Unsubscribe value
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (address LIKE '%@' || domain)
);

CREATE TABLE list_members (
    list_address text NOT NULL REFERENCES lists ON DELETE CASCADE,
    member       text NOT NULL CHECK (member = lower(member) AND member LIKE '%_@_%' AND wsmtp_clean_text(member)),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (list_address, member)
);

-- Vacation replies (RFC 3834), active between starts_at and ends_at, at most
-- once per sender per period.
CREATE TABLE autoreplies (
    address    text PRIMARY KEY REFERENCES mailboxes ON DELETE CASCADE,
    subject    text NOT NULL CHECK (wsmtp_clean_text(subject)),
    body       text NOT NULL,
    starts_at  timestamptz NOT NULL DEFAULT '-infinity',
    ends_at    timestamptz NOT NULL DEFAULT 'infinity',
    period     interval NOT NULL DEFAULT '7 days' CHECK (period > interval '0'),
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at)
);

CREATE TABLE autoreply_sent (
    address text NOT NULL REFERENCES autoreplies ON DELETE CASCADE,
    sender  text NOT NULL,
    sent_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (address, sender)
);

-- What the deliverer adds for list mail: header lines (each ending CRLF) put
-- before the message, and the envelope sender to use instead of the message's.
ALTER TABLE deliveries ADD COLUMN prepend_headers text NOT NULL DEFAULT '';
ALTER TABLE deliveries ADD COLUMN envelope_from_override text;

-- Routing attempts that threw (bad data, a bug): counted, the last error kept,
-- and the message held past the router's limit (common/pg/router_queue.cpp).
ALTER TABLE messages ADD COLUMN routing_failures integer NOT NULL DEFAULT 0 CHECK (routing_failures >= 0);

-- Fair claim order for routing: start-time fair queueing. Every envelope
-- sender and every client address has a virtual clock (milliseconds). A message
-- is stamped with the later of now, its sender's clock and its client's clock;
-- then its sender's clock moves 100 ms ahead and its client's 10 ms. A sender
-- that floods the queue runs its clock into the future, so a message from anyone
-- else, stamped "now", sorts before the bulk of the flood; a client rotating
-- sender addresses is slowed by its client clock, but ten times more gently,
-- because many honest senders share one relay. A sender slower than one message
-- per 100 ms is never delayed. Clocks behind now mean nothing and are pruned by
-- the router (common/pg/router_queue.cpp).
CREATE TABLE route_fairness (
    fair_key   text PRIMARY KEY,
    next_vtime bigint NOT NULL
);

ALTER TABLE messages ADD COLUMN route_vtime bigint;
UPDATE messages SET route_vtime = (extract(epoch FROM received_at) * 1000)::bigint WHERE received_at IS NOT NULL;
CREATE INDEX messages_route_fair ON messages (route_vtime, id) WHERE state = 1 AND NOT held;

-- Returns max(clock of key, at) and moves the clock to that plus step.
CREATE FUNCTION route_fair_advance(key text, at bigint, step bigint) RETURNS bigint LANGUAGE sql AS $$
    INSERT INTO route_fairness AS f (fair_key, next_vtime) VALUES (key, at + step)
    ON CONFLICT (fair_key) DO UPDATE SET next_vtime = greatest(f.next_vtime, at) + step
    RETURNING next_vtime - step
$$;

-- Stamps route_vtime once, when a message first becomes RECEIVED. A message
-- reset 2->1 keeps its stamp (and so its place). Sender keys are always locked
-- before client keys, so two transactions never wait on each other in a cycle.
CREATE FUNCTION messages_route_fairness() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE TRIGGER messages_route_fairness
    BEFORE INSERT OR UPDATE OF state ON messages
    FOR EACH ROW EXECUTE FUNCTION messages_route_fairness();

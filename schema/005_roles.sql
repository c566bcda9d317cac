-- 005: least privilege in the database. One NOLOGIN group role per program,
-- granted only what that program's transitions need; an administrator grants a
-- group role to each host's login role (GRANT wsmtp_router TO router_mx2).
-- Row-level security narrows what the table grants cannot say: which states a
-- program may move messages out of, which messages it may delete (the listener
-- only its own aborted receipts in state 0, the reaper states 0 and 5), and whose
-- bodies it may write. The owner that runs the migrations bypasses all of this.
-- A later migration that adds a table adds its grants there too; only
-- wsmtp_admin receives new tables by default.

-- Roles are per cluster, so they may exist already (a second wsmtp database, or
-- an administrator who created them beforehand because the migrating role lacks
-- CREATEROLE).
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['wsmtp_listener', 'wsmtp_router', 'wsmtp_deliver', 'wsmtp_reaper', 'wsmtp_admin'] LOOP
        CONTINUE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r);
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN
                NULL;  -- created concurrently by a migration of another database
            WHEN insufficient_privilege THEN
                RAISE EXCEPTION 'role % does not exist and % may not create it', r, current_user
                    USING HINT = 'create the group roles as a superuser first (CREATE ROLE ' || r
                                 || ' NOLOGIN; ...), or migrate as a role with CREATEROLE';
        END;
    END LOOP;
END;
$$;

-- Nobody but the owner creates objects in the wsmtp schema (PostgreSQL before
-- 15 lets PUBLIC create in "public").
DO $$
BEGIN
    EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC', current_schema());
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO wsmtp_listener, wsmtp_router, wsmtp_deliver, wsmtp_reaper, wsmtp_admin',
                   current_schema());
END;
$$;

-- Everyone checks the schema version and the state machine's tables (the state
-- trigger reads msg_transitions as the role that changes a state).
GRANT SELECT ON schema_version, msg_states, msg_transitions
    TO wsmtp_listener, wsmtp_router, wsmtp_deliver, wsmtp_reaper, wsmtp_admin;

-- wsmtp (listener): validates recipients and AUTH, creates messages in state 0,
-- streams their bodies, commits 0->1 and deletes its own aborted receipts. The
-- 0->1 trigger stamps the fair routing clock, hence route_fairness.
GRANT SELECT ON domains, mailboxes, aliases, lists, catchalls, auth_users TO wsmtp_listener;
GRANT SELECT, INSERT, UPDATE, DELETE ON messages TO wsmtp_listener;
GRANT INSERT ON recipients, body_chunks TO wsmtp_listener;
GRANT SELECT, INSERT, UPDATE ON route_fairness TO wsmtp_listener;

-- wroute (router): claims 1->2, plans 2->3, records routing failures, reads
-- bodies (list and auto-reply decisions look at headers), writes deliveries, and
-- creates auto-replies as new messages in state 1.
GRANT SELECT ON domains, mailboxes, aliases, lists, list_members, catchalls, mailbox_forwards, autoreplies,
                relay_pools TO wsmtp_router;
GRANT SELECT, INSERT, UPDATE ON messages TO wsmtp_router;
GRANT SELECT, INSERT ON recipients, deliveries, body_chunks TO wsmtp_router;
GRANT SELECT, INSERT, UPDATE ON autoreply_sent TO wsmtp_router;
GRANT SELECT, INSERT, UPDATE, DELETE ON route_fairness TO wsmtp_router;

-- wdeliver: claims 3->4, finishes 4->5 or returns 4->3, updates its deliveries,
-- marks relays down, and creates DSNs as new messages in state 1.
GRANT SELECT ON domains, mailboxes, relay_pools, relays TO wsmtp_deliver;
GRANT UPDATE (down_until, last_error) ON relays TO wsmtp_deliver;
GRANT SELECT, INSERT, UPDATE ON messages TO wsmtp_deliver;
GRANT SELECT, UPDATE ON deliveries TO wsmtp_deliver;
GRANT SELECT, INSERT ON recipients, body_chunks TO wsmtp_deliver;
GRANT SELECT, INSERT, UPDATE ON route_fairness TO wsmtp_deliver;

-- wreaper: returns expired leases (2->1, 4->3), holds crash loops, bounces
-- deliveries past the queue lifetime, deletes aborted (0) and finished (5)
-- messages. It never reads a body.
GRANT SELECT, UPDATE, DELETE ON messages TO wsmtp_reaper;
GRANT SELECT ON recipients TO wsmtp_reaper;
GRANT SELECT, UPDATE ON deliveries TO wsmtp_reaper;

-- wsmtpctl: the operator manages the queue and the directory. Schema changes
-- stay with the owner (`wsmtpctl db migrate` runs as the owner, not as this role).
DO $$
BEGIN
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO wsmtp_admin', current_schema());
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO wsmtp_admin',
                   current_schema());
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT USAGE, SELECT ON SEQUENCES TO wsmtp_admin',
                   current_schema());
END;
$$;

-- Row-level security on the queue. Policies are permissive and per role; a role
-- without a policy for a command sees no rows for it, on top of the grants above.
ALTER TABLE messages ENABLE ROW LEVEL SECURITY;

CREATE POLICY listener_read ON messages FOR SELECT TO wsmtp_listener USING (true);
CREATE POLICY listener_create ON messages FOR INSERT TO wsmtp_listener WITH CHECK (state = 0);
CREATE POLICY listener_commit ON messages FOR UPDATE TO wsmtp_listener USING (state = 0) WITH CHECK (state IN (0, 1));
-- Only a receipt that never completed: a message the listener acknowledged is
-- out of its hands.
CREATE POLICY listener_discard ON messages FOR DELETE TO wsmtp_listener USING (state = 0);

CREATE POLICY router_read ON messages FOR SELECT TO wsmtp_router USING (true);
CREATE POLICY router_generate ON messages FOR INSERT TO wsmtp_router WITH CHECK (state = 1 AND client_addr IS NULL);
CREATE POLICY router_route ON messages FOR UPDATE TO wsmtp_router USING (state IN (1, 2)) WITH CHECK (state IN (1, 2, 3));

CREATE POLICY deliver_read ON messages FOR SELECT TO wsmtp_deliver USING (true);
CREATE POLICY deliver_generate ON messages FOR INSERT TO wsmtp_deliver WITH CHECK (state = 1 AND client_addr IS NULL);
CREATE POLICY deliver_deliver ON messages FOR UPDATE TO wsmtp_deliver USING (state IN (3, 4)) WITH CHECK (state IN (3, 4, 5));

CREATE POLICY reaper_read ON messages FOR SELECT TO wsmtp_reaper USING (true);
-- USING covers every state because the deletions lock their batch with FOR
-- UPDATE, which PostgreSQL checks against the UPDATE policy; WITH CHECK keeps
-- what an update may leave behind to the reset and bounce states.
CREATE POLICY reaper_reset ON messages FOR UPDATE TO wsmtp_reaper USING (true) WITH CHECK (state IN (1, 2, 3, 4));
CREATE POLICY reaper_delete ON messages FOR DELETE TO wsmtp_reaper USING (state IN (0, 5));

CREATE POLICY admin_all ON messages TO wsmtp_admin USING (true) WITH CHECK (true);

-- Bodies: the listener writes only into receipts still in progress; router and
-- deliverer write only the bodies of the messages they generate (state 1, no
-- client address). No role but the admin may change or delete a chunk.
ALTER TABLE body_chunks ENABLE ROW LEVEL SECURITY;

CREATE POLICY listener_stream ON body_chunks FOR INSERT TO wsmtp_listener
    WITH CHECK (EXISTS (SELECT 1 FROM messages m WHERE m.id = message_id AND m.state = 0));
CREATE POLICY readers_read ON body_chunks FOR SELECT TO wsmtp_router, wsmtp_deliver USING (true);
CREATE POLICY generators_write ON body_chunks FOR INSERT TO wsmtp_router, wsmtp_deliver
    WITH CHECK (EXISTS (SELECT 1 FROM messages m WHERE m.id = message_id AND m.state = 1 AND m.client_addr IS NULL));
CREATE POLICY admin_all ON body_chunks TO wsmtp_admin USING (true) WITH CHECK (true);

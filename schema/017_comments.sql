-- 017: the schema explains itself. COMMENT ON every table, trigger, trigger
-- function, function, index and policy, so that pg_dump (and \d+ in psql)
-- shows what each one is for and what each trigger does to a row;
-- schema/current.sql is that dump (tests/harness/schema_dump.py). Apart from
-- the comments, one change: receive_batch_begin (009) is dropped. Nothing has
-- called it since 013, and no deployment exists whose listener might.
--
-- Older migrations' comments that no longer hold (the migrations stay as they
-- were applied; the comments below are the current word):
-- * 001: "enforced by a trigger", "the trigger below refuses the rest": the
--   trigger messages_state_guard was replaced in 012 and dropped in 015; the
--   moves are refused by messages_state_refuse_insert/_move, whose WHEN
--   clauses hold the list of msg_transitions as a constant.
-- * 005: "the state trigger reads msg_transitions as the role that changes a
--   state": no trigger has read it since 012. The SELECT grant stays, for
--   people and queries.
-- * 007: "so it still fires before messages_state_guard": it fires before the
--   refuse and stamp triggers of 015 (BEFORE triggers fire in name order).
-- * 013: "receive_batch_begin and receive_batch stay [for] a listener of the
--   previous release": there is no previous release; receive_batch_begin goes
--   here, receive_batch stays because receive_messages stores through it.

DROP FUNCTION receive_batch_begin(text[], text[]);

-- Tables ----------------------------------------------------------------------

COMMENT ON TABLE schema_version IS
$$Migrations applied to this database, one row per schema/NNN_name.sql. Created by wsmtpctl db migrate
(common/pg/migrate.cpp), not by a migration; the daemons refuse to start unless the highest version
equals the one they were built with.$$;

COMMENT ON TABLE msg_states IS
$$The six message states, for people and queries to read: 0 RECEIVING, 1 RECEIVED, 2 ROUTING,
3 ROUTED, 4 DELIVERING, 5 DONE. Nothing references it (messages.state lost its foreign key in 010;
its CHECK admits exactly these values).$$;

COMMENT ON TABLE msg_transitions IS
$$The allowed state moves, for people and queries to read: forward 0->1->2->3->4->5, and the resets
2->1 (an expired routing lease) and 4->3 (an expired delivery lease, or deliveries deferred).
No trigger reads this table: messages_state_refuse_move holds the same list as a constant, and
tests/integration/db/common/schema_test.cpp fails if the two ever disagree.$$;

COMMENT ON TABLE messages IS
$$The queue: one row per message, moved through the states of msg_states by the listener
(0 -> 1), the router (1 -> 2 -> 3) and the deliverer (3 -> 4 -> 5 or 4 -> 3), and deleted by the
reaper in states 0 and 5. Seven triggers act on its rows (see each trigger's comment): in firing
order on an insert or state change, messages_route_fairness stamps route_vtime,
messages_state_refuse_* reject moves outside msg_transitions, messages_state_stamp_* set the
time stamps, and messages_state_wakeup_* (after the statement) NOTIFY the next stage. Row-level
security: 14 policies, one per role and command (see each policy's comment); the owner, and the
SECURITY DEFINER functions it owns, bypass them. A lease (lease_owner, lease_token,
lease_expires: all set or all NULL) marks a message a worker claimed in state 2 or 4.$$;

COMMENT ON TABLE recipients IS
$$The envelope recipients (RCPT TO) of a message, in order; deleted with it. The router expands
them into deliveries.$$;

COMMENT ON TABLE body_chunks IS
$$A message's body (header and content) in chunks, in order, written as it arrives and read back
chunk by chunk; deleted with it. STORAGE EXTERNAL (no compression) and toast_tuple_target 8160
(a small body stays in the row). Row-level security: 4 policies (who may write which bodies).$$;

COMMENT ON TABLE deliveries IS
$$One row per final recipient of a message, written by the router in the move 2 -> 3: the
transport and destination to deliver to, and the attempt bookkeeping the deliverer keeps
(status pending -> delivered or bounced, final_at set with it). Deleted with the message.$$;

COMMENT ON TABLE domains IS
$$The domains this server accepts mail for, and their plus-addressing delimiter ('' for none).$$;

COMMENT ON TABLE mailboxes IS
$$Local mailboxes. maildir is the destination for every transport (the name is historical): the
Maildir for maildir, the spool file for mbox, a Unix socket path or host:port for lmtp. Optional
quotas, and forward_keep_copy for mailboxes that also forward (mailbox_forwards).$$;

COMMENT ON TABLE aliases IS
$$Address -> target rewrites, expanded by the router like any recipient (several rows for one
address fan out).$$;

COMMENT ON TABLE catchalls IS
$$Per domain: where mail for an unknown address of the domain goes instead of bouncing.$$;

COMMENT ON TABLE mailbox_forwards IS
$$Forwarding targets of a mailbox; the mailbox keeps a copy if its forward_keep_copy is set.$$;

COMMENT ON TABLE lists IS
$$Mailing lists (RFC 2369, RFC 2919): owner, posting policy (anyone, members, moderated), List-Id,
and the bounce address their mail leaves with as envelope sender.$$;

COMMENT ON TABLE list_members IS
$$The members of each mailing list.$$;

COMMENT ON TABLE autoreplies IS
$$Vacation replies (RFC 3834) of a mailbox, active between starts_at and ends_at, at most once per
sender per period (autoreply_sent).$$;

COMMENT ON TABLE autoreply_sent IS
$$When a mailbox last auto-replied to each sender: the once-per-period memory of autoreplies.$$;

COMMENT ON TABLE auth_users IS
$$SMTP AUTH accounts (RFC 4954) of the listener: an argon2id hash (libsodium crypto_pwhash_str
format, which carries its salt and costs) and a disabled flag.$$;

COMMENT ON TABLE relay_pools IS
$$Named groups of outbound relays (smart hosts) for deliveries with transport relay, which name
their pool in destination: TLS and 8BITMIME policies, messages per connection, and how long a
failing relay stays out of rotation.$$;

COMMENT ON TABLE relays IS
$$The relays of each pool with their weights; down_until and last_error are written by any
deliverer that found the relay failing, and read by all.$$;

COMMENT ON TABLE route_fairness IS
$$Fair routing order: one virtual clock (milliseconds) per envelope sender (s:<sender>) and per
client address (c:<address>), advanced by route_fair_advance when a message is stamped
(100 ms per message for a sender, 10 ms for a client). Clocks behind now mean nothing and are
pruned by the router.$$;

-- Columns whose meaning the name does not tell --------------------------------

COMMENT ON COLUMN messages.route_vtime IS
$$Fair routing order (route_fairness): the router claims RECEIVED messages by (route_vtime, id).
Set by the listener's batches (receive_messages) or by the trigger messages_route_fairness, once:
a message reset 2 -> 1 keeps it.$$;
COMMENT ON COLUMN messages.lease_owner IS
$$The worker holding the lease (host:pid), NULL without a lease. '' marks a lease handed back by
the router after a routing failure (the backoff before the retry): its expiry is not counted in
expired_claims.$$;
COMMENT ON COLUMN messages.expired_claims IS
$$How many claims on this message expired unfinished; past the configured limit the message is
held where it was reset to (a crash loop or a poison message).$$;
COMMENT ON COLUMN messages.state_changed_at IS
$$When state last changed: set by the statements of common/pg/transitions.cpp that move messages,
or by the trigger messages_state_stamp_update for any other statement.$$;
COMMENT ON COLUMN mailboxes.maildir IS
$$The destination for every transport (historical name): Maildir path, mbox spool path, or LMTP
server (absolute socket path or host:port).$$;
COMMENT ON COLUMN deliveries.dsn_message_id IS
$$The generated DSN message that reported this bounced delivery (no foreign key: the two have
independent retention). "Bounced and not yet reported" is status = 'bounced' AND this IS NULL.$$;
COMMENT ON COLUMN deliveries.spool_offset IS
$$mbox: the spool size just before this delivery's latest append, so a retry after a crash finds
its own copy instead of appending a second.$$;

-- Indexes ---------------------------------------------------------------------

COMMENT ON INDEX messages_route_fair IS
$$The router's claim order: RECEIVED, not held, by (route_vtime, id).$$;
COMMENT ON INDEX messages_deliver_queue IS
$$The deliverer's claim order: ROUTED, not held, by (next_attempt_at, id).$$;
COMMENT ON INDEX messages_leases IS
$$The reaper's scan for expired leases (states 2 and 4).$$;
COMMENT ON INDEX messages_reapable IS
$$The reaper's deletions: aborted (0) and finished (5) messages by age.$$;
COMMENT ON INDEX messages_routed_since IS
$$The reaper's queue lifetime pass: the oldest ROUTED messages, held or not.$$;
COMMENT ON INDEX deliveries_pending IS
$$A message's deliveries still pending.$$;

-- Trigger functions and triggers on messages ----------------------------------

COMMENT ON FUNCTION messages_route_fairness() IS
$$Trigger function of messages_route_fairness. Sets NEW.route_vtime to the later of now and the
clocks of the sender (key s:<lower(envelope_from)>, advanced 100 ms) and of the client (key
c:<host(client_addr)>, advanced 10 ms, skipped when client_addr is NULL), through
route_fair_advance, which locks those route_fairness rows until the commit. Sender key before
client key, as route_fair_stamp, so two transactions never wait on each other in a cycle.
Returns NEW and changes nothing else.$$;

COMMENT ON TRIGGER messages_route_fairness ON messages IS
$$BEFORE INSERT OR UPDATE OF state, FOR EACH ROW, only when NEW.state = 1 (RECEIVED) and
NEW.route_vtime IS NULL: stamps route_vtime (messages_route_fairness()). It acts on the messages
the router and deliverer generate (auto-replies, DSNs: inserted in state 1) and on streamed
receipts moving 0 -> 1 without a stamp; the listener's batches arrive stamped, and a reset 2 -> 1
keeps its stamp, so neither fires it. First of the BEFORE triggers (name order).$$;

COMMENT ON FUNCTION messages_state_refuse() IS
$$Trigger function of messages_state_refuse_insert and _move: raises check_violation, so the
statement fails ("message N cannot be created in state S" or "message N: transition A -> B is not
allowed"). The triggers' WHEN clauses decide; this only reports.$$;

COMMENT ON TRIGGER messages_state_refuse_insert ON messages IS
$$BEFORE INSERT, FOR EACH ROW, when NEW.state is not 0 or 1: refuses the row (messages_state_refuse()).
A message is created RECEIVING (0, a body still streaming) or RECEIVED (1, complete).$$;

COMMENT ON TRIGGER messages_state_refuse_move ON messages IS
$$BEFORE UPDATE OF state, FOR EACH ROW, when the state changes and (OLD.state, NEW.state) is not
one of msg_transitions' moves (0,1) (1,2) (2,3) (3,4) (4,5) (2,1) (4,3): refuses the row
(messages_state_refuse()). The state machine's guard; the list is a constant in the WHEN clause,
so an allowed move costs no function call. Which role may make which move is narrowed further by
the row-level policies on messages.$$;

COMMENT ON FUNCTION messages_state_stamp() IS
$$Trigger function of messages_state_stamp_insert and _update. On INSERT: sets NEW.received_at to
now(). On UPDATE: sets NEW.state_changed_at to now(), and the new state's time stamp: 1
received_at (kept if already set), 2 routing_at, 3 routed_at (kept if already set), 4
delivering_at, 5 done_at. Changes no other column.$$;

COMMENT ON TRIGGER messages_state_stamp_insert ON messages IS
$$BEFORE INSERT, FOR EACH ROW, when NEW.state = 1 and NEW.received_at IS NULL: sets received_at
(messages_state_stamp()), which the CHECK on state 1 requires. Fires for generated messages that
leave it unset; the listener's batches set it themselves. After the refuse triggers (name order).$$;

COMMENT ON TRIGGER messages_state_stamp_update ON messages IS
$$BEFORE UPDATE OF state, FOR EACH ROW, when the state changes and the statement left
state_changed_at unchanged: sets state_changed_at and the new state's time stamp
(messages_state_stamp()). The hot-path moves of common/pg/transitions.cpp set these columns
themselves and so skip it; the lease resets and holds, operators and psql get stamped here.$$;

COMMENT ON FUNCTION messages_state_wakeup() IS
$$Trigger function of messages_state_wakeup_insert and _update: one pass over the statement's
written rows (transition table written); NOTIFY wsmtp_route if one of them is RECEIVED (1) and
wsmtp_deliver if one is ROUTED (3). Changes no row. A NOTIFY is delivered at commit, so a
worker never wakes for uncommitted work, and repeats within a transaction fold into one.$$;

COMMENT ON TRIGGER messages_state_wakeup_insert ON messages IS
$$AFTER INSERT, FOR EACH STATEMENT, with the inserted rows as transition table written: wakes the
router or deliverer (messages_state_wakeup()). Skipped (WHEN) in sessions that set
wsmtp.deferred_wakeup = on: the listener's store connections, which NOTIFY themselves right after
their commit (common/pg/wakeup.cpp), because a NOTIFY inside a transaction serialises commits.
Every other session (router, deliverer, reaper, wsmtpctl, psql) notifies here. A lost wake-up
costs at most one poll interval.$$;

COMMENT ON TRIGGER messages_state_wakeup_update ON messages IS
$$AFTER UPDATE, FOR EACH STATEMENT, with the new row versions as transition table written: wakes
the router or deliverer (messages_state_wakeup()), unless the session set
wsmtp.deferred_wakeup = on (as messages_state_wakeup_insert). Fires for any update of messages,
not only state changes: a statement that rewrites a RECEIVED or ROUTED row without moving it also
notifies, which costs a worker one empty claim.$$;

-- Other functions -------------------------------------------------------------

COMMENT ON FUNCTION wsmtp_clean_text(text) IS
$$True when the text has no control characters: a directory value that ends up in a header or an
envelope can inject no header line or SMTP command. Used by CHECK constraints.$$;

COMMENT ON FUNCTION route_fair_advance(text, bigint, bigint) IS
$$Returns the later of the clock of key and at, and moves the clock to that plus step (creating
it). Locks the route_fairness row until the commit.$$;

COMMENT ON FUNCTION route_fair_stamp(text[], text[]) IS
$$Fair-order stamps for a batch of messages (senders[i], clients[i]; '' for no client), one per
message in the order given: each message gets the later of its sender's and its client's next
slot. Keys are advanced sender keys first, each group in sorted order.$$;

COMMENT ON FUNCTION reserve_message_ids(integer) IS
$$n ids from the messages id sequence: the listener reserves its queue ids ahead, so it knows a
batch's ids before the commit and can look them up if the commit's answer is lost.$$;

COMMENT ON FUNCTION receive_messages(bigint[], text[], text[], text[], text[], bigint[], bigint[], integer[],
                                     text[], bytea[]) IS
$$The listener's store of a batch of whole messages (at most 1000) in one statement: stamps them
(route_fair_stamp) and creates them RECEIVED through receive_batch. SECURITY DEFINER; executable
by wsmtp_listener and wsmtp_admin only.$$;

COMMENT ON FUNCTION receive_batch(bigint[], bigint[], text[], text[], text[], text[], bigint[], bigint[], integer[],
                                  text[], bytea[]) IS
$$Creates a batch of messages directly in state 1 under the given ids and stamps, with received_at,
their recipients (flat: message ordinal, seq, address) and one body chunk each, in one statement;
returns how many. SECURITY DEFINER because row-level security admits a listener's body only for
a message it can already see; it only creates (a reused id fails on the primary key). Called by
receive_messages.$$;

-- Row-level policies ----------------------------------------------------------

COMMENT ON POLICY listener_read ON messages IS $$wsmtp_listener reads every message.$$;
COMMENT ON POLICY listener_create ON messages IS $$wsmtp_listener creates messages in state 0 only.$$;
COMMENT ON POLICY listener_commit ON messages IS
$$wsmtp_listener updates only messages in state 0, leaving them in 0 or 1: the commit 0 -> 1.$$;
COMMENT ON POLICY listener_discard ON messages IS
$$wsmtp_listener deletes only receipts that never completed (state 0).$$;
COMMENT ON POLICY router_read ON messages IS $$wsmtp_router reads every message.$$;
COMMENT ON POLICY router_generate ON messages IS
$$wsmtp_router creates only generated messages (auto-replies): state 1, no client address.$$;
COMMENT ON POLICY router_route ON messages IS
$$wsmtp_router updates messages in states 1 and 2, leaving them in 1, 2 or 3: claim 1 -> 2,
plan 2 -> 3, failures.$$;
COMMENT ON POLICY deliver_read ON messages IS $$wsmtp_deliver reads every message.$$;
COMMENT ON POLICY deliver_generate ON messages IS
$$wsmtp_deliver creates only generated messages (DSNs): state 1, no client address.$$;
COMMENT ON POLICY deliver_deliver ON messages IS
$$wsmtp_deliver updates messages in states 3 and 4, leaving them in 3, 4 or 5: claim 3 -> 4,
finish 4 -> 5, defer 4 -> 3.$$;
COMMENT ON POLICY reaper_read ON messages IS $$wsmtp_reaper reads every message.$$;
COMMENT ON POLICY reaper_reset ON messages IS
$$wsmtp_reaper updates any message (its deletions lock their batch FOR UPDATE, which is checked
against the UPDATE policy) but leaves it in 1-4: lease resets 2 -> 1 and 4 -> 3, holds, bounces.$$;
COMMENT ON POLICY reaper_delete ON messages IS
$$wsmtp_reaper deletes aborted (0) and finished (5) messages only.$$;
COMMENT ON POLICY admin_all ON messages IS $$wsmtp_admin (wsmtpctl) may do anything to any message.$$;

COMMENT ON POLICY listener_stream ON body_chunks IS
$$wsmtp_listener writes chunks only for messages still in state 0 (a body streaming in).$$;
COMMENT ON POLICY readers_read ON body_chunks IS $$wsmtp_router and wsmtp_deliver read every body.$$;
COMMENT ON POLICY generators_write ON body_chunks IS
$$wsmtp_router and wsmtp_deliver write chunks only for the messages they generate (state 1, no
client address).$$;
COMMENT ON POLICY admin_all ON body_chunks IS $$wsmtp_admin (wsmtpctl) may do anything to any body.$$;

-- 011: two indexes on messages that every message paid for and no daemon uses.
-- A state change cannot be a HOT update (state is in index predicates), so
-- each of a message's six row versions is written into every index whose
-- predicate it matches.
--
-- messages_state_age (state, state_changed_at) took an entry at every state
-- change, five per message. The daemons find their work through partial
-- indexes (messages_route_fair, messages_deliver_queue, messages_leases,
-- messages_reapable, and messages_routed_since below for the reaper's queue
-- lifetime pass, which takes entries only on the moves to 3); the operator's
-- summary, message filters by state and bulk resets by state and age read the
-- table, a scan an operator command can afford.
--
-- messages_route_queue (received_at, id) WHERE state = 1 has been redundant
-- since routing claims in fair order (messages_route_fair, schema 003, same
-- predicate).
DROP INDEX IF EXISTS messages_state_age;
DROP INDEX IF EXISTS messages_route_queue;
-- The reaper's queue lifetime pass: the oldest ROUTED messages, held or not.
CREATE INDEX messages_routed_since ON messages (received_at) WHERE state = 3;

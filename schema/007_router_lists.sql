-- 007: the router's list reports and its hot path.
--
-- Members refused inside a mailing list's fan-out (an unknown local member, an
-- alias loop under a member) are reported by the router itself to the list's
-- bounce address, in the routing transaction, and their delivery rows marked
-- as reported so the deliverer's report to the poster leaves them out
-- (common/pg/router_bounces.cpp). That one column is all the router may change
-- in a delivery row.
GRANT UPDATE (dsn_message_id) ON deliveries TO wsmtp_router;

-- The fair-order trigger of 003 only ever acts when a message first becomes
-- RECEIVED without a stamp, but as a plain row trigger it ran its PL/pgSQL
-- function (and read the clock) for every state change of every message:
-- twice per message for the router, and again for every delivery pass. With
-- the condition in the trigger's WHEN clause the database decides without
-- calling the function; the function keeps its own check, so what it does is
-- unchanged. The trigger keeps its name, so it still fires before
-- messages_state_guard (BEFORE triggers fire in name order).
DROP TRIGGER messages_route_fairness ON messages;
CREATE TRIGGER messages_route_fairness
    BEFORE INSERT OR UPDATE OF state ON messages
    FOR EACH ROW WHEN (NEW.state = 1 AND NEW.route_vtime IS NULL)
    EXECUTE FUNCTION messages_route_fairness();

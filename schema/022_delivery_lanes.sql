-- 022: the deliverer claims fresh mail in fair order and deferred mail in a lane of its own.
--
-- Until now claim_for_delivery took ROUTED messages by (next_attempt_at, id):
-- first come, first served. A flood from one sender, routed ahead of everyone
-- else's mail, was then also delivered ahead of it, and deferred mail that came
-- due again competed with fresh mail at the head of the queue.
--
-- Fresh mail (never claimed for delivery: delivering_at IS NULL) is now claimed
-- by the fair stamp the message got on arrival (route_vtime, 003/009): one
-- sender's or client's backlog is spread out in virtual time, so a message from
-- anyone else is claimed at once. Deferred mail (claimed before: delivering_at
-- set) is claimed by next_attempt_at, at most a configured share of each claim
-- ([deliver] retry_share_percent), as Postfix keeps its deferred queue apart
-- from the active one. The two partial indexes split the old one's rows
-- between them, so a message still takes one entry per move to ROUTED.
DROP INDEX IF EXISTS messages_deliver_queue;
CREATE INDEX messages_deliver_fresh ON messages (route_vtime, id)
    WHERE state = 3 AND NOT held AND delivering_at IS NULL;
CREATE INDEX messages_deliver_retry ON messages (next_attempt_at, id)
    WHERE state = 3 AND NOT held AND delivering_at IS NOT NULL;
COMMENT ON INDEX messages_deliver_fresh IS
    'The deliverer''s claim order for fresh mail: ROUTED, not held, never claimed for delivery, by the fair stamp (route_vtime, id).';
COMMENT ON INDEX messages_deliver_retry IS
    'The deliverer''s claim order for deferred mail (the retry lane): ROUTED, not held, claimed before, by (next_attempt_at, id).';

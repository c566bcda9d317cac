-- 006: storage settings for the queue tables, which are a work queue rather than
-- an archive: every row is inserted, updated through a handful of states and
-- deleted within days. The defaults (vacuum after 20% of a table is dead) let a
-- table of millions of rows carry hundreds of thousands of dead tuples, which
-- slows every claim scan; vacuum them early and often instead.

-- messages: updated on every transition and lease; leave room on each page so
-- updates that touch no indexed column stay on the page (HOT).
ALTER TABLE messages SET (
    fillfactor = 85,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_limit = 2000
);

-- deliveries: one update per attempt, deleted with their message.
ALTER TABLE deliveries SET (
    fillfactor = 90,
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_limit = 2000
);

-- recipients and body_chunks: insert-once, delete-once; large. Vacuum after the
-- reaper's deletions so the space is reused by new mail instead of growing files.
ALTER TABLE recipients SET (autovacuum_vacuum_scale_factor = 0.05, autovacuum_vacuum_threshold = 5000);
ALTER TABLE body_chunks SET (autovacuum_vacuum_scale_factor = 0.05, autovacuum_vacuum_threshold = 1000,
                             autovacuum_vacuum_cost_limit = 2000);

-- The reaper deletes state-5 and state-0 messages by age: an index matching
-- exactly that scan keeps each batch index-driven at any queue size.
CREATE INDEX messages_reapable ON messages (state_changed_at) WHERE state IN (0, 5);

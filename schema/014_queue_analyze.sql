-- 014: the queue tables are analyzed after 10,000 changed rows plus a fifth of
-- the table, not after 2% of it (006).
--
-- With 006's settings and autovacuum looking every second (deploy/README.md),
-- a burst had messages, recipients, body_chunks and deliveries analyzed about
-- once a second each: ANALYZE reads a sample of up to 30,000 rows, sorts every
-- column, and its new statistics make every connection rebuild its cached plans
-- for the table. perf put analyze at about 4% of all CPU while 10,000 messages
-- were received, routed and delivered on 2 cores; with these settings that
-- burst took 7.9 s instead of 8.7 s (medians of 4 alternating runs each).
--
-- What a queue's statistics are for is slight: the daemons' statements are
-- written so that their plans do not depend on them (ids chosen by index into
-- = ANY(ARRAY(...)), per-row probes kept with OFFSET 0). Row counts still
-- follow the table, as VACUUM updates them every time it runs, which these
-- settings leave as they were; a steady 10 messages a second still has each
-- table analyzed every few minutes.
ALTER TABLE messages SET (autovacuum_analyze_threshold = 10000, autovacuum_analyze_scale_factor = 0.2);
ALTER TABLE deliveries SET (autovacuum_analyze_threshold = 10000, autovacuum_analyze_scale_factor = 0.2);
ALTER TABLE recipients SET (autovacuum_analyze_threshold = 10000, autovacuum_analyze_scale_factor = 0.2);
ALTER TABLE body_chunks SET (autovacuum_analyze_threshold = 10000, autovacuum_analyze_scale_factor = 0.2);

-- Scheduled pool life (issue 16 item 4): when time alone next changes each pool (its earliest
-- hold expiry, statement or merchant review: cloud_bridge.pool.statements.next_due_ms), kept
-- in the pool's own row by every write, so that a scheduler finds due pools with one indexed
-- query and claims them with the row lock (PostgreSQL: FOR UPDATE SKIP LOCKED). Existing pools
-- start at 0: due at once, so the first scheduler round sets their real time.
ALTER TABLE pools ADD COLUMN due_ms BIGINT NOT NULL DEFAULT 0;
CREATE INDEX pools_due ON pools (due_ms);

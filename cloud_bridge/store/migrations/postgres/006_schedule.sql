-- Scheduled pool life (issue 16 item 4): when time alone next changes each pool (its earliest
-- hold expiry, statement or merchant review: cloud_bridge.pool.statements.next_due_ms), kept
-- in the pool's own row by every write, so that a scheduler finds due pools with one indexed
-- query and claims them with the row lock (PostgreSQL: FOR UPDATE SKIP LOCKED). Existing pools
-- start at 0: due at once, so the first scheduler round sets their real time.
ALTER TABLE pools ADD COLUMN due_ms BIGINT NOT NULL DEFAULT 0;
CREATE INDEX pools_due ON pools (due_ms);

-- Outputs of operator commands and schedulers (senders named <bridge id>-cli) waiting for a
-- bridge to adopt them: a bridge asks for them inside every batch that runs pool commands, so
-- that a user's changes are published in version order whoever made them; this partial index
-- keeps that question cheap when none wait (cloud_bridge.store.ingest_repo.operator_outputs).
CREATE INDEX outputs_operator ON outputs (created_ms, seq) WHERE instance LIKE '%-cli';

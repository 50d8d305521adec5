-- Credit pools (issue 5): pool state, idempotent command log, events and ledger postings.
-- Amounts are integer fen; times are ms since the epoch; JSON columns are TEXT.

-- One row per pool. `state` is the engine's PoolState as JSON; the other columns mirror it for
-- queries, and the CHECKs make the database refuse a row that breaks the pool invariants.
CREATE TABLE pools (
    user_id TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('open', 'frozen', 'closed')),
    limit_fen BIGINT NOT NULL CHECK (limit_fen >= 0),
    available_fen BIGINT NOT NULL CHECK (available_fen >= 0),
    outstanding_fen BIGINT NOT NULL CHECK (outstanding_fen >= 0),
    held_fen BIGINT NOT NULL CHECK (held_fen >= 0),
    interest_fen BIGINT NOT NULL CHECK (interest_fen >= 0),
    rate_bps INTEGER NOT NULL CHECK (rate_bps >= 0),
    version BIGINT NOT NULL CHECK (version >= 1),
    updated_ms BIGINT NOT NULL,
    state TEXT NOT NULL,
    CHECK (available_fen = limit_fen - outstanding_fen - held_fen)
);

-- Every command that reached a pool, by idempotency key (unique per pool): a retry returns
-- `outcome` instead of running again.
CREATE TABLE pool_commands (
    user_id TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    kind TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    result TEXT NOT NULL,
    version BIGINT NOT NULL,
    ts_ms BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    PRIMARY KEY (user_id, idem_key)
);

-- What changed, in order: version is the pool version the change produced.
CREATE TABLE pool_events (
    user_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (user_id, version, seq)
);

-- The double-entry journal: the entry (user_id, version) is the set of its postings, one per
-- account, signed (debit > 0, credit < 0); each entry balances (see cloud_bridge/pool/ledger.py).
CREATE TABLE pool_postings (
    user_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    account TEXT NOT NULL,
    amount_fen BIGINT NOT NULL CHECK (amount_fen <> 0),
    ts_ms BIGINT NOT NULL,
    PRIMARY KEY (user_id, version, account)
);

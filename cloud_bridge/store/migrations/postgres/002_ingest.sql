-- The bridge (issue 6): device registry, replay windows, the event log, rejections and the
-- transactional outbox of publications. Times are ms since the epoch; JSON columns are TEXT.

-- One row per enrolled device; the replay windows are protocol.replay.ReplayWindow bytes.
CREATE TABLE devices (
    device_id TEXT PRIMARY KEY,
    fleet TEXT NOT NULL,
    user_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
    baseline TEXT NOT NULL,
    identity TEXT NOT NULL,
    enrolled_ms BIGINT NOT NULL,
    data_window BYTEA NOT NULL,
    session_window BYTEA NOT NULL,
    key_generation INTEGER NOT NULL,
    risk_streak INTEGER NOT NULL DEFAULT 0,
    last_boot BIGINT NOT NULL DEFAULT 0,
    online INTEGER NOT NULL DEFAULT 0,
    last_seen_ms BIGINT NOT NULL DEFAULT 0
);

-- Every key a device has had; kid = SHA-256(public key)[0..8].
CREATE TABLE device_keys (
    kid BYTEA PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES devices (device_id),
    public_key BYTEA NOT NULL,
    generation INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'retired', 'revoked')),
    added_ms BIGINT NOT NULL
);
CREATE INDEX device_keys_device ON device_keys (device_id);

-- The event log: every accepted data message (report, trigger), exactly once.
CREATE TABLE events (
    device_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    kind INTEGER NOT NULL,
    received_ms BIGINT NOT NULL,
    envelope BYTEA NOT NULL,
    PRIMARY KEY (device_id, seq)
);

-- Births, deaths and enrollments, by their own sequence spaces.
CREATE TABLE session_events (
    device_id TEXT NOT NULL,
    kind INTEGER NOT NULL,
    seq BIGINT NOT NULL,
    received_ms BIGINT NOT NULL,
    envelope BYTEA NOT NULL,
    PRIMARY KEY (device_id, kind, seq)
);

-- Every refused message with its reason code (nothing refused is applied).
CREATE TABLE rejections (
    id BIGSERIAL PRIMARY KEY,
    received_ms BIGINT NOT NULL,
    topic TEXT NOT NULL,
    device_id TEXT,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    envelope BYTEA
);

-- Publications written in the same transaction as the change they describe; published after
-- the commit and deleted once the broker has them, so a crash in between loses nothing. Keyed by
-- the bridge instance and the message's own sequence number.
CREATE TABLE outputs (
    instance TEXT NOT NULL,
    seq BIGINT NOT NULL,
    topic TEXT NOT NULL,
    payload BYTEA NOT NULL,
    retain INTEGER NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (instance, seq)
);

-- Sequence numbers of bridge output, reserved in blocks per bridge instance.
CREATE TABLE bridge_counters (
    instance TEXT PRIMARY KEY,
    next_seq BIGINT NOT NULL
);

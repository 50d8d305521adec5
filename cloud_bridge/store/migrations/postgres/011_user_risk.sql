-- Per-user risk signals (issue 13 items 6 and 7): what impossible travel (the user's last
-- located event, from any of their devices) and the trigger-sequence model (the user's latest
-- allowed triggers and the CUSUM state) remember of each user, as the JSON of
-- `cloud_bridge.risk.user_signals.UserMemory` (`to_json`). A user with no row starts fresh.
-- The travel fix kept in devices.risk_memory before this migration is no longer read.
CREATE TABLE user_risk (
    user_id TEXT PRIMARY KEY,
    memory TEXT NOT NULL,
    updated_ms BIGINT NOT NULL
);

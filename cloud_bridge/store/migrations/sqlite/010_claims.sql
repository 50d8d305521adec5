-- Provisioning by claim (issue 18 item 7): batches of bridge-signed claim tokens. A token's
-- claim account (claim-<token id>, its password's hash here) is on the broker until the token
-- expires or its batch is revoked. A token is used once: the key that used it (used_kid) and
-- the answer sent (answer, the signed envelope, sent again to a retry of the same key).
CREATE TABLE claim_batches (
    batch_id TEXT PRIMARY KEY,
    fleet TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    revoked_ms BIGINT
);
CREATE TABLE claim_tokens (
    token_id TEXT PRIMARY KEY,
    batch_id TEXT NOT NULL REFERENCES claim_batches (batch_id),
    user_id TEXT NOT NULL,
    expires_ms BIGINT NOT NULL,
    mqtt_hash TEXT NOT NULL,
    used_kid BLOB,
    device_id TEXT,
    answer BLOB,
    used_ms BIGINT
);
CREATE INDEX claim_tokens_batch ON claim_tokens (batch_id);

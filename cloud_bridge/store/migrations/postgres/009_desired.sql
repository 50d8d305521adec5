-- Desired and reported configuration (issue 18 item 4): per device, the configuration the
-- operator wants (`desired`, a JSON object of dotted agent keys, numbered by `desired_version`)
-- and the version the device last said it runs (`reported_version`, from its birth or its
-- answer to a versioned config command). `sent_seq`/`sent_version`: the last config command
-- sent for the desired state, so its "ok" answer can be matched to the version it carried.
CREATE TABLE device_config (
    device_id TEXT PRIMARY KEY,
    desired_version BIGINT NOT NULL DEFAULT 0,
    desired TEXT NOT NULL DEFAULT '{}',
    reported_version BIGINT NOT NULL DEFAULT 0,
    sent_seq BIGINT NOT NULL DEFAULT 0,
    sent_version BIGINT NOT NULL DEFAULT 0,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX device_config_drift ON device_config (desired_version, reported_version);

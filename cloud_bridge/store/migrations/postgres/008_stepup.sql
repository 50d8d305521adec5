-- Step-up (issue 13 item 10): an event whose action waits for the user's confirmation on their
-- primary device. The held action is re-planned from the logged event on a confirmation; the
-- row keeps the command sent (its seq, answered by the device's report as cmd_seq), the
-- challenge, the deadline and the outcome (pending, confirmed, declined, expired).
CREATE TABLE stepups (
    event TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    fleet TEXT NOT NULL,
    user_id TEXT NOT NULL,
    primary_device TEXT NOT NULL,
    cmd_seq BIGINT NOT NULL,
    challenge BYTEA NOT NULL,
    opened_ms BIGINT NOT NULL,
    deadline_ms BIGINT NOT NULL,
    status TEXT NOT NULL
);
CREATE INDEX stepups_reply ON stepups (primary_device, cmd_seq);
CREATE INDEX stepups_due ON stepups (status, deadline_ms);

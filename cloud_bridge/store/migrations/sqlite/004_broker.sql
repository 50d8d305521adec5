-- Broker accounts (issue 12): the MQTT username, its role and the Mosquitto `$7$` hash of its
-- password, never the password. A device account's username is the device id; whether it may
-- connect follows the device's status (a revoked device is left out of the password file).
CREATE TABLE broker_accounts (
    username TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('device', 'bridge', 'observer')),
    password_hash TEXT NOT NULL,
    updated_ms BIGINT NOT NULL
);

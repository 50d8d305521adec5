-- Per-device risk signals (issue 13 item 11): what the clone, skew, fingerprint-drift, travel
-- and re-centring signals remember of each device between its events, as the JSON of
-- `cloud_bridge.risk.signals.Memory` (`to_json`). Empty: nothing yet (the signals start fresh).
ALTER TABLE devices ADD COLUMN risk_memory TEXT NOT NULL DEFAULT '';

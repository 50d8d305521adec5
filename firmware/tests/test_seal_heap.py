"""The signing path within the heap goal: a report sealed in 64 KB of heap (the 64-bit unix
port, where loaded bytecode also lives on the heap), within the size goals of issue 14."""

import ed25519
import messages

HEAPSIZE = "64k"


def test_a_report_seals_in_64k_within_the_size_goals():
    key = ed25519.SigningKey(bytes(range(32)))
    report = {
        "sender": "esp32-rig-3", "seq": 1234567, "boot": 17, "ts_ms": 1764300000123,
        "model_id": "risk-v1", "model_sha256": bytes(32), "risk_pm": 412,
        "mono_ms": 86400123, "features": bytes(20),
        "fingerprint": {0: -1520, 1: 300, 2: 998700}, "telemetry": {"steps": 8123},
    }  # fmt: skip
    for _ in range(5):
        envelope = messages.seal(messages.REPORT, report, key)
    payload = messages.encode(messages.REPORT, report)
    assert len(payload) <= 146, len(payload)  # four SHA-512 blocks per signature
    assert len(envelope) <= 240, len(envelope)

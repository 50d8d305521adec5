"""The firmware's integer fingerprint and model input, in real MicroPython, equal the Linux
agent's float64 ones (agent.features, agent.scoring) on the same samples: what the bridge
recomputes from a report's fingerprint must be the device's `features` byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from agent import features
from agent.features import Capture, Fingerprint
from agent.scoring import Scorer
from tests.firmware.conftest import ROOT, MicroPython

SCRIPT = """
import json, fingerprint
doc = json.load(open(%r))
for c in doc["captures"]:
    print(json.dumps(fingerprint.extract(c["cols"], c["ts"], c["rate"], 16384, 131, c["temp"])))
for cur, base in doc["pairs"]:
    print(fingerprint.model_input(cur, base).hex())
"""


def capture(rng: np.random.Generator, n: int, rate_hz: int) -> Capture:
    """A window at rest: per-capture biases and noise levels, some axes correlated in time
    (a low-pass), arrival jitter; and sometimes a coarse, synthetic-looking sensor."""
    mean = rng.normal([0, 0, 16384, 0, 0, 0], [400, 400, 400, 80, 80, 80])
    sd = rng.uniform([3, 3, 3, 1, 1, 1], [40, 40, 40, 12, 12, 12])
    white = rng.normal(0, 1, size=(n + 1, 6)) * sd
    low_pass = rng.random() < 0.5
    white = (white[1:] + white[:-1]) / 2 if low_pass else white[1:]
    raw = np.round(mean + white)
    if rng.random() < 0.2:
        raw = np.round(raw / 4) * 4  # a sensor with empty codes
    if rng.random() < 0.2:
        raw[n // 2 :] = raw[: n - n // 2]  # repeats
    period = 1e6 / rate_hz * rng.uniform(0.999, 1.001)
    ts = np.cumsum(np.full(n, period) + rng.uniform(-30, 30, n)).astype(np.int64) + 1000
    return Capture(
        raw.clip(-32768, 32767).astype(np.int16), ts, float(rate_hz), 16384.0, 131.0,
        int(rng.integers(15_000, 40_000)), np.zeros(0, np.int32), np.zeros(0, np.int32),
    )  # fmt: skip


def test_fingerprint_and_model_input_equal_the_agents(
    micropython: MicroPython, tmp_path: Path
) -> None:
    rng = np.random.default_rng(20261201)
    caps = [
        capture(rng, int(n), int(rate))
        for n, rate in zip(
            rng.choice([64, 128, 256], 60), rng.choice([100, 250, 1000], 60), strict=True
        )
    ]
    want = [features.extract(c).to_wire() for c in caps]
    prints = [Fingerprint.from_wire(w) for w in want]
    baselines = [features.enroll(prints[i : i + 6]) for i in range(0, 60, 6)]
    assert any(b.tc_gyro_x_udps_per_c != 0 for b in baselines)  # temperature fits exercised
    pairs = [(prints[i], baselines[(i * 7) % len(baselines)]) for i in range(60)]
    doc = {
        "captures": [
            {
                "cols": [c.imu_raw[:, i].tolist() for i in range(6)],
                "ts": c.imu_ts_us.tolist(),
                "rate": int(c.sample_rate_hz),
                "temp": c.temp_mc,
            }
            for c in caps
        ],
        "pairs": [[list(a.to_wire().values()), list(b.to_wire().values())] for a, b in pairs],
    }
    data = tmp_path / "captures.json"
    data.write_text(json.dumps(doc))
    out = micropython.run(["-c", SCRIPT % str(data)], heapsize="1m").stdout.splitlines()
    got = [json.loads(line) for line in out[: len(caps)]]
    assert got == [[w[i] for i in range(24)] for w in want]
    scorer = Scorer.load(ROOT / "models" / "risk-v1.tflite")
    expected = [
        scorer.quantise(features.model_input(a, b, scorer.normalisation)).hex() for a, b in pairs
    ]
    assert out[len(caps) :] == expected
    assert len(set(expected)) > 30  # varied inputs, not one clipped vector

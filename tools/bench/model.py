"""Model suite: invoke latency of the on-device scorer and the memory it takes once loaded.

- `scorer.score` end to end (quantise a float32 vector, invoke, map to risk_pm) and the bare
  tflite-runtime `invoke` alone, p50 and p99 in microseconds over the same inputs;
- the resident set size of a fresh Python process after `Scorer.load`, beside the same process
  before loading (the interpreter and numpy import are most of it);
- the firmware's integer-only scorer under CPython, as a peer (on the ESP32 it is far slower).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from agent.features import N_INPUTS
from agent.scoring import Scorer
from tools.bench.common import Context, Figure, percentile

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "risk-v1.tflite"

_RSS_PROBE = """
import json, sys
from tools.bench.common import rss_mb
before = rss_mb()
import numpy
from agent.scoring import Scorer
imported = rss_mb()
scorer = Scorer.load(sys.argv[1])
scorer.score(numpy.zeros(scorer.n_inputs, dtype=numpy.float32))
print(json.dumps({"before": before, "imported": imported, "loaded": rss_mb()}))
"""


def _timings_us(fn, inputs: list) -> list[float]:  # type: ignore[no-untyped-def,type-arg]
    out = []
    for x in inputs:
        start = time.perf_counter_ns()
        fn(x)
        out.append((time.perf_counter_ns() - start) / 1000)
    return out


def run(ctx: Context) -> list[Figure]:
    n = 2000 if ctx.quick else 20000
    scorer = Scorer.load(MODEL)
    rng = np.random.default_rng(1)
    vectors = list(rng.normal(0, 2, (n, N_INPUTS)).astype(np.float32))
    raw = [scorer.quantise(v) for v in vectors]
    for v in vectors[:200]:  # warm up
        scorer.score(v)
    ctx.progress(f"scorer.score x {n}")
    end_to_end = _timings_us(scorer.score, vectors)
    interp = scorer._interp  # the same interpreter, invoked bare
    index = interp.get_input_details()[0]["index"]
    tensors = [np.frombuffer(r, np.int8).reshape(1, N_INPUTS) for r in raw]
    ctx.progress(f"bare invoke x {n}")
    interp.set_tensor(index, tensors[0])
    bare = _timings_us(lambda _t: interp.invoke(), tensors)

    sys.path.insert(0, str(ROOT / "firmware" / "lib"))
    try:
        import scorer as firmware  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    ctx.progress("firmware integer scorer (CPython)")
    board = _timings_us(firmware.infer, raw[: n // 10])

    ctx.progress("RSS of a fresh process after Scorer.load")
    probe = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, str(MODEL)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    rss = json.loads(probe.stdout)
    s = "model"
    return [
        Figure(s, "scorer.score p50 (quantise+invoke+map)", percentile(end_to_end, 50), "us"),
        Figure(s, "scorer.score p99", percentile(end_to_end, 99), "us"),
        Figure(s, "bare interpreter invoke p50", percentile(bare, 50), "us", note="tflite-runtime"),
        Figure(s, "bare interpreter invoke p99", percentile(bare, 99), "us"),
        Figure(
            s,
            "firmware int8 infer p50 (CPython)",
            percentile(board, 50),
            "us",
            note="pure-Python integer kernels; the ESP32 path",
        ),
        Figure(s, "RSS after Scorer.load", rss["loaded"], "MB", note="fresh process"),
        Figure(
            s,
            "RSS of the loaded model and interpreter",
            rss["loaded"] - rss["imported"],
            "MB",
            peer=f"{rss['imported']:.1f} MB after importing numpy and agent.scoring",
        ),
        Figure(s, "model size", MODEL.stat().st_size, "bytes"),
    ]

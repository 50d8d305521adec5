"""Clock skew from `mono_ms` against receive time: LP envelope (Moon et al. 1999) against least
squares, the method of Kohno, Broido and claffy (IEEE S&P 2005).

    python -m tools.eval_risk skew --json [--seed N] [--quick]
    python -m tools.eval_risk.sig_skew --json [--seed N] [--quick]

Each trial is one simulated board (agent.simulator.device: its host crystal's skew, +-40 ppm)
sending one report a second on its own 1 s timer for 15 minutes. The agent reads `mono_ms`
(truncated to whole ms) when it makes the report, a uniform 0-50 ms of processing after the
timer; the network adds 5 ms + exponential(mean 2 ms); the bridge stamps arrival in whole us on
a reference clock. Reported: the root-mean-square error of each estimator over the trials, in
ppm (goal: LP <= 0.2 ppm and below least squares), plus the LP's 95th percentile and its error
after 5 minutes for scale.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

from agent.simulator.device import SimDevice, rng_for
from cloud_bridge.risk.skew import lp_fit, ls_fit
from tools.eval_risk import signal_main

GOAL_PPM = 0.2
REPORT_PERIOD_S = 1.0
DURATION_S = 15 * 60
BASE_DELAY_MS = 5.0
DELAY_MEAN_MS = 2.0
PROCESSING_MAX_MS = 50.0
FIRST_SEED = 700_000  # trial devices: a seed range of their own
_STREAM = 4_104  # keys this tool's randomness apart from the simulator's own streams


def reports(skew_ppm: float, n: int, rng: np.random.Generator) -> tuple[list[int], list[int]]:
    """(mono_ms, received_us) of n reports from a board whose clock runs skew_ppm fast."""
    k = np.arange(n, dtype=np.float64)
    rate = 1.0 + skew_ppm * 1e-6
    # The device's timer fires every REPORT_PERIOD_S of its own clock, from a random phase.
    device_ms = rng.uniform(1e6, 1e8) + k * REPORT_PERIOD_S * 1000.0
    device_ms = device_ms + rng.uniform(0.0, PROCESSING_MAX_MS, n)
    true_ms = device_ms / rate  # reference time of sending (its origin does not matter)
    arrive_ms = true_ms + BASE_DELAY_MS + rng.exponential(DELAY_MEAN_MS, n)
    mono = np.floor(device_ms).astype(np.int64)
    received = np.floor(arrive_ms * 1000.0).astype(np.int64)
    return mono.tolist(), received.tolist()


def trial_errors(seed: int, trials: int, duration_s: float) -> dict[str, list[float]]:
    """Absolute LP and LS errors (ppm) over `trials` boards after `duration_s`."""
    n = int(duration_s / REPORT_PERIOD_S)
    lp, ls = [], []
    for i in range(trials):
        board = SimDevice(FIRST_SEED + seed * 10_000 + i, "phone")
        rng = rng_for(_STREAM, seed, i)
        mono, received = reports(board.skew_ppm, n, rng)
        lp.append(abs(lp_fit(mono, received).skew_ppm - board.skew_ppm))
        ls.append(abs(ls_fit(mono, received).skew_ppm - board.skew_ppm))
    return {"lp": lp, "ls": ls}


def _rms(x: list[float]) -> float:
    return math.sqrt(sum(v * v for v in x) / len(x))


def evaluate(seed: int, quick: bool) -> dict[str, Any]:
    trials = 60 if quick else 500
    full = trial_errors(seed, trials, DURATION_S)
    short = trial_errors(seed, trials, 5 * 60)
    lp, ls = _rms(full["lp"]), _rms(full["ls"])
    return {
        "lp_error_ppm_15min": round(lp, 4),
        "ls_error_ppm_15min": round(ls, 4),
        "lp_p95_ppm_15min": round(float(np.percentile(full["lp"], 95)), 4),
        "ls_p95_ppm_15min": round(float(np.percentile(full["ls"], 95)), 4),
        "lp_error_ppm_5min": round(_rms(short["lp"]), 4),
        "ls_error_ppm_5min": round(_rms(short["ls"]), 4),
        "lp_beats_ls_share": round(
            sum(a < b for a, b in zip(full["lp"], full["ls"], strict=True)) / trials, 3
        ),
        "trials": trials,
        "error": "root mean square over the trials, ppm",
        "goal": f"LP RMS error <= {GOAL_PPM} ppm after 15 min at 1 report/s and below LS",
        "met": bool(lp <= GOAL_PPM and lp < ls),
    }


def main(argv: list[str] | None = None) -> int:
    return signal_main(
        "sig_skew", __doc__, evaluate, argv, quick_help="fewer trials (for tests)", seeds=1000
    )


if __name__ == "__main__":
    sys.exit(main())

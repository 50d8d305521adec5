"""Calibration: per-kind thresholds from one cohort's genuine scores, checked on another.

    python -m tools.eval_risk calibration --json [--seed N] [--quick]
    python -m tools.eval_risk.sig_calibration --write [--devices N] [--sessions N]

Calibrates on devices of the "validation" seed range and measures on the device-disjoint "eval"
range: the genuine step-up and hold rates of every kind (goals: at most 1 % and 0.1 %) and the
impostors detected at the step-up thresholds, against the model's own held-out detection at
1 % false positives (tools.eval_model). `--write` stores the thresholds beside the model, where
the bridge reads them (models/risk-v1.calibration.json).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from agent.features import model_input
from agent.scoring import Scorer
from agent.simulator.cohort import GENUINE, SPLITS, cohort
from cloud_bridge.risk.calibration import Calibration, calibrate, flagged_rate
from cloud_bridge.risk.fingerprint import IdentityScales, fit_scales, identity_deltas
from tools.eval_model import DEFAULT_MODEL, metrics

# Calibrate below the goals, so the sampling error of a fresh cohort stays inside them.
STEP_UP_GOAL, HOLD_GOAL = 0.01, 0.001
STEP_UP_RATE, HOLD_RATE = 0.008, 0.0005
SEED_STRIDE = 50_000  # devices of one seed's cohorts start here within their split's range


def scores(
    scorer: Scorer, first_seed: int, devices: int, sessions: int, per_impostor: int
) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """(genuine, impostor) output q per device kind."""
    genuine: dict[str, list[int]] = defaultdict(list)
    impostor: dict[str, list[int]] = defaultdict(list)
    for s in cohort(first_seed, devices, sessions, per_impostor):
        q = scorer.score(model_input(s.current, s.baseline, scorer.normalisation)).output_q
        (genuine if s.label == GENUINE else impostor)[s.kind].append(q)
    return dict(genuine), dict(impostor)


def identity_scales(first_seed: int, devices: int, sessions: int) -> IdentityScales:
    """Between-session sds of the board measures over the cohort's genuine sessions (the
    fingerprint distance's scales, written beside the thresholds)."""
    rows = [
        identity_deltas(s.current, s.baseline)
        for s in cohort(first_seed, devices, sessions, 0)
        if s.label == GENUINE
    ]
    return fit_scales(np.array(rows))


def _first(split: str, seed: int) -> int:
    if not 0 <= seed < 1_000_000 // SEED_STRIDE:
        raise SystemExit(f"seed must be 0 to {1_000_000 // SEED_STRIDE - 1}")
    return SPLITS[split] + seed * SEED_STRIDE


def measure(
    scorer: Scorer, seed: int, devices: int, sessions: int
) -> tuple[Calibration, dict[str, Any]]:
    cal_genuine, _ = scores(scorer, _first("validation", seed), devices, sessions, 0)
    kinds = calibrate(cal_genuine, STEP_UP_RATE, HOLD_RATE)
    scales = identity_scales(_first("validation", seed), devices, sessions)
    cal = Calibration(
        model_id=scorer.model_id,
        model_sha256=scorer.model_sha256.hex(),
        step_up_rate=STEP_UP_RATE,
        hold_rate=HOLD_RATE,
        kinds=kinds,
        source={
            "cohort": "agent.simulator.cohort, validation seed range",
            "first_seed": _first("validation", seed),
            "devices": devices,
            "genuine_sessions_per_device": sessions,
            "enrollment_sessions": 6,
            "tool": "python -m tools.eval_risk.sig_calibration --write",
        },
        identity_scales=scales,
    )
    genuine, impostor = scores(scorer, _first("eval", seed), devices, sessions, 2)
    per_kind: dict[str, dict[str, Any]] = {}
    step_up_rates, hold_rates = [], []
    detected = total = 0
    for kind, t in sorted(kinds.items()):
        g, i = genuine[kind], impostor.get(kind, [])
        hits = sum(1 for q in i if q >= t.step_up_q)
        detected, total = detected + hits, total + len(i)
        step_up_rates.append(flagged_rate(g, t.step_up_q))
        hold_rates.append(flagged_rate(g, t.hold_q))
        per_kind[kind] = {
            "step_up_q": t.step_up_q,
            "hold_q": t.hold_q,
            "genuine": len(g),
            "step_up_rate": round(flagged_rate(g, t.step_up_q), 5),
            "hold_rate": round(flagged_rate(g, t.hold_q), 5),
            "impostors": len(i),
            "impostor_detection": round(hits / len(i), 4) if i else None,
        }
    labels = [GENUINE] * sum(map(len, genuine.values()))
    flat = [q for qs in genuine.values() for q in qs]
    for qs in impostor.values():
        labels += ["impostor"] * len(qs)
        flat += qs
    heldout_tpr = float(metrics(labels, flat)["tpr_at_1pct_fpr"])  # type: ignore[arg-type]
    result = {
        "step_up_rate": round(max(step_up_rates), 5),
        "hold_rate": round(max(hold_rates), 5),
        "impostor_detection": round(detected / total, 4),
        "heldout_tpr": round(heldout_tpr, 4),
        "per_kind": per_kind,
    }
    return cal, result


def evaluate(seed: int, quick: bool) -> dict[str, Any]:
    devices, sessions = (200, 10) if quick else (2000, 25)
    _, result = measure(Scorer.load(DEFAULT_MODEL), seed, devices, sessions)
    result["goal"] = (
        f"genuine step-up <= {STEP_UP_GOAL:.0%} and hold <= {HOLD_GOAL:.1%} of reports in every "
        "kind; impostor detection within 2 points of the model's held-out TPR at 1 % FPR"
    )
    result["met"] = bool(
        result["step_up_rate"] <= STEP_UP_GOAL
        and result["hold_rate"] <= HOLD_GOAL
        and result["impostor_detection"] >= result["heldout_tpr"] - 0.02
    )
    return result


def calibration_path(model: Path) -> Path:
    return model.with_suffix(".calibration.json")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tools.eval_risk.sig_calibration",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--devices", type=int, default=2000, help="devices per cohort (2000)")
    ap.add_argument("--sessions", type=int, default=25, help="genuine sessions per device (25)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write", action="store_true", help="write the calibration file")
    args = ap.parse_args(argv)
    scorer = Scorer.load(args.model)
    cal, result = measure(scorer, args.seed, args.devices, args.sessions)
    print(json.dumps(result, indent=1))
    if args.write:
        path = calibration_path(args.model)
        path.write_text(json.dumps(cal.to_json(), indent=1) + "\n")
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

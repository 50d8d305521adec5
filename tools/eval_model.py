"""python -m tools.eval_model [--json] [--devices N]: metrics of the committed model, no TensorFlow.

Scores a fresh, device-disjoint cohort (seed range "eval" of agent.simulator.cohort) through
agent.scoring.Scorer (tflite-runtime) and reports the ROC AUC, the true-positive rate at 1 %
false-positive rate, and the detection rate of each impostor kind at that same threshold. The
score ranked is the model's int8 output (`output_q`), exactly what the device computes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from agent.features import model_input
from agent.scoring import Scorer
from agent.simulator.cohort import GENUINE, SPLITS, LabelledSession, cohort
from agent.simulator.impostors import IMPOSTOR_KINDS

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "models" / "risk-v1.tflite"
TARGET_FPR = 0.01


def auc(genuine: npt.ArrayLike, impostor: npt.ArrayLike) -> float:
    """ROC AUC of `impostor` scoring above `genuine` (Mann-Whitney U; ties count one half)."""
    g = np.asarray(genuine, dtype=np.float64)
    i = np.asarray(impostor, dtype=np.float64)
    both = np.concatenate([g, i])
    order = both.argsort(kind="mergesort")
    ranks = np.empty(len(both))
    sorted_vals = both[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_vals, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    u = ranks[len(g) :].sum() - len(i) * (len(i) + 1) / 2.0
    return float(u / (len(g) * len(i)))


def threshold_at_fpr(genuine: npt.ArrayLike, fpr: float = TARGET_FPR) -> float:
    """The lowest score t with at most `fpr` of genuine sessions at or above t (flag: >= t)."""
    g = np.sort(np.asarray(genuine, dtype=np.float64))
    candidates = np.unique(g)
    for t in candidates:
        if np.mean(g >= t) <= fpr:
            return float(t)
    return float(g[-1]) + 1.0  # above every genuine score


def metrics(
    labels: Sequence[str], scores: npt.ArrayLike, fpr: float = TARGET_FPR
) -> dict[str, object]:
    """AUC, TPR at `fpr`, the threshold, and per-impostor-kind detection at that threshold."""
    s = np.asarray(scores, dtype=np.float64)
    lab = np.asarray(labels)
    genuine = s[lab == GENUINE]
    impostor = s[lab != GENUINE]
    t = threshold_at_fpr(genuine, fpr)
    per_kind = {
        k: {"n": int((lab == k).sum()), "detected": float(np.mean(s[lab == k] >= t))}
        for k in IMPOSTOR_KINDS
        if (lab == k).any()
    }
    return {
        "n_genuine": len(genuine),
        "n_impostor": len(impostor),
        "auc": auc(genuine, impostor),
        "threshold_q": t,
        "fpr_at_threshold": float(np.mean(genuine >= t)),
        "tpr_at_1pct_fpr": float(np.mean(impostor >= t)),
        "per_kind": per_kind,
    }


def score_sessions(
    scorer: Scorer, sessions: Iterable[LabelledSession]
) -> tuple[list[str], list[int]]:
    """(labels, output_q) of each session, through the real interpreter."""
    labels, scores = [], []
    for s in sessions:
        result = scorer.score(model_input(s.current, s.baseline, scorer.normalisation))
        labels.append(s.label)
        scores.append(result.output_q)
    return labels, scores


def evaluate(
    scorer: Scorer,
    first_seed: int,
    n_devices: int,
    genuine: int = 8,
    per_impostor: int = 3,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, object]:
    """Metrics of `scorer` on a fresh cohort of devices first_seed .. + n_devices - 1."""
    sessions = cohort(first_seed, n_devices, genuine, per_impostor, progress)
    labels, scores = score_sessions(scorer, sessions)
    out = metrics(labels, scores)
    out.update({"first_seed": first_seed, "devices": n_devices, "model_id": scorer.model_id})
    return out


def _progress(done: int, total: int) -> None:
    if done == total or done % max(1, total // 20) == 0:
        print(f"  devices {done}/{total}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.eval_model", description=__doc__)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--devices", type=int, default=400, help="held-out devices (default 400)")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    args = parser.parse_args(argv)
    scorer = Scorer.load(args.model)
    started = time.monotonic()
    result = evaluate(scorer, SPLITS["eval"], args.devices, progress=_progress)
    result["seconds"] = round(time.monotonic() - started, 1)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(
            f"model {result['model_id']}: AUC {result['auc']:.4f}, "
            f"TPR@1%FPR {result['tpr_at_1pct_fpr']:.3f}"
        )
        for kind, v in result["per_kind"].items():  # type: ignore[attr-defined]
            print(f"  {kind:<11} detected {v['detected']:.3f} of {v['n']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Wearable activity: rest / walk / run on REAL smartwatch recordings.

    python -m tools.eval_risk activity --json [--seed N]
    python -m tools.eval_risk.sig_activity --json [--seed N]

The data: BasicMotions (UEA multivariate time-series archive, Bagnall et al. 2018): four
students wearing a smartwatch each recorded standing, walking, running and badminton, ten
seconds at 10 Hz, three-axis accelerometer (gravity already removed by the watch, m/s^2) and
gyroscope; 80 windows in a TRAIN and a TEST split. The sktime package ships it (BSD-3-Clause)
as sktime/datasets/data/BasicMotions/*.ts; this tool reads those files with its own parser and
never imports sktime, so `pip install --no-deps sktime` is all it needs (./dev test does that).

agent.activity.classify labels each window. Standing is rest, walking walk, running run;
badminton has no label of its own and is reported apart (what it gets called, and its steps).
Also measured: the same windows rotated at random (a watch worn any way round), and the 5 s
halves of every window. (Gravity cannot be put back faithfully: the watch's vertical during
the recording is unknown; tests/agent/test_activity_classify.py covers gravity on synthetic
gaits.)
"""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from agent import activity
from tools.eval_risk import signal_main

GOAL = 0.8
HZ = 10.0
LABELS = {"Standing": "rest", "Walking": "walk", "Running": "run"}
DATA_PACKAGE, DATA_DIR = "sktime", ("datasets", "data", "BasicMotions")

Window = tuple[str, list[list[float]]]  # (dataset label, [ax, ay, az])


class DataMissing(RuntimeError):
    pass


def data_dir() -> Path:
    """Where the installed sktime keeps BasicMotions (found without importing sktime)."""
    spec = importlib.util.find_spec(DATA_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DataMissing(
            "BasicMotions comes with the sktime package: pip install --no-deps 'sktime==1.2.0' "
            "(./dev test installs it)"
        )
    return Path(next(iter(spec.submodule_search_locations))).joinpath(*DATA_DIR)


def parse_ts(text: str) -> list[Window]:
    """Windows of a .ts file (sktime's text format): header lines start with # or @; each data
    line is one case, dimensions separated by ':', values by ',', the class label last."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "@")):
            continue
        *dims, label = line.split(":")
        accel = [[float(v) for v in d.split(",")] for d in dims[:3]]
        out.append((label, accel))
    return out


def load(split: str) -> list[Window]:
    return parse_ts((data_dir() / f"BasicMotions_{split}.ts").read_text())


def rotated(axes: list[list[float]], rng: np.random.Generator) -> list[list[float]]:
    """The window in a random orientation (a uniformly random unit quaternion)."""
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    rot = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    moved = rot @ np.array(axes)
    return [list(map(float, row)) for row in moved]


def score(windows: list[Window]) -> dict[str, Any]:
    right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    other: Counter[str] = Counter()
    steps: dict[str, list[int]] = defaultdict(list)
    for label, (ax, ay, az) in windows:
        a = activity.classify(ax, ay, az, HZ)
        want = LABELS.get(label)
        steps[label].append(a.steps)
        if want is None:
            other[a.label] += 1
            continue
        total[want] += 1
        right[want] += a.label == want
    return {
        "accuracy": round(sum(right.values()) / sum(total.values()), 4),
        "per_class": {k: round(right[k] / total[k], 4) for k in sorted(total)},
        "windows": sum(total.values()),
        "badminton_called": dict(sorted(other.items())),
        "median_steps_per_10s": {k: float(np.median(v)) for k, v in sorted(steps.items())},
    }


def halves(windows: list[Window]) -> list[Window]:
    out = []
    for label, axes in windows:
        n = len(axes[0]) // 2
        out += [(label, [a[:n] for a in axes]), (label, [a[n:] for a in axes])]
    return out


def evaluate(seed: int, quick: bool) -> dict[str, Any]:
    del quick  # 160 windows: always the whole dataset
    rng = np.random.default_rng(seed)
    splits = {s: load(s) for s in ("TRAIN", "TEST")}
    every = splits["TRAIN"] + splits["TEST"]
    overall = score(every)
    turned = score([(lab, rotated(axes, rng)) for lab, axes in every])
    result = {
        "real_data_accuracy": overall["accuracy"],
        "per_class": overall["per_class"],
        "per_split": {s: score(w)["accuracy"] for s, w in splits.items()},
        "any_orientation": turned["accuracy"],
        "five_second_windows": score(halves(every))["accuracy"],
        "windows": overall["windows"],
        "badminton_called": overall["badminton_called"],
        "median_steps_per_10s": overall["median_steps_per_10s"],
        "dataset": "BasicMotions (UEA archive) from sktime, smartwatch, 10 Hz, 10 s windows",
        "goal": f"real_data_accuracy >= {GOAL}",
    }
    result["met"] = bool(
        result["real_data_accuracy"] >= GOAL and min(overall["per_class"].values()) >= GOAL
    )
    return result


def main(argv: list[str] | None = None) -> int:
    return signal_main(
        "sig_activity",
        __doc__,
        evaluate,
        argv,
        quick_help="no effect: the dataset is small",
        seed_help="the random orientations",
        missing=DataMissing,
    )


if __name__ == "__main__":
    sys.exit(main())

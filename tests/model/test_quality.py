"""Detection quality of the committed model on held-out, device-disjoint simulated devices.

The cohort is generated here, fresh, from the "test" seed range (agent.simulator.cohort.SPLITS):
no board or owner of it was seen in training or validation. Scores are the int8 outputs of the
real tflite-runtime interpreter. Per impostor kind we require a detection rate at the 1 %-FPR
threshold of at least PER_KIND_FLOOR (docs/model.md explains the floors).
"""

from __future__ import annotations

import pytest

from agent.scoring import Scorer
from agent.simulator.cohort import SPLITS
from tools.eval_model import auc, evaluate, threshold_at_fpr

DEVICES = 120  # 30 of each kind: 960 genuine sessions, about 1 300 attacks
# Detection rate at the 1 %-FPR threshold. Emulators and copied keys meet real calibration
# physics and are caught almost always; a replay recorded at nearly the current temperature with
# its own timestamps, and another person's taps, are the hard cases (docs/model.md).
PER_KIND_FLOOR = {"replay": 0.80, "emulator": 0.98, "copied_key": 0.98, "other_user": 0.65}


@pytest.fixture(scope="module")
def result(scorer: Scorer) -> dict[str, object]:
    return evaluate(scorer, SPLITS["test"], DEVICES, genuine=8, per_impostor=3)


def test_auc(result: dict[str, object]) -> None:
    assert result["auc"] >= 0.98  # type: ignore[operator]


def test_tpr_at_1pct_fpr(result: dict[str, object]) -> None:
    assert result["fpr_at_threshold"] <= 0.01  # type: ignore[operator]
    assert result["tpr_at_1pct_fpr"] >= 0.90  # type: ignore[operator]


@pytest.mark.parametrize("kind", sorted(PER_KIND_FLOOR))
def test_each_impostor_kind_is_detected(result: dict[str, object], kind: str) -> None:
    per_kind = result["per_kind"][kind]  # type: ignore[index]
    assert per_kind["n"] >= 150
    assert per_kind["detected"] >= PER_KIND_FLOOR[kind]


def test_metric_helpers() -> None:
    assert auc([0, 1, 2], [3, 4]) == 1.0
    assert auc([1, 1], [1, 1]) == 0.5
    genuine = list(range(100))
    assert threshold_at_fpr(genuine, 0.01) == 99  # one genuine session of 100 at or above

"""Per-kind thresholds from genuine rates (cloud_bridge.risk.calibration), and the shipped
calibration file against a fresh, device-disjoint cohort."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.scoring import Scorer
from cloud_bridge.risk import calibration as cal
from tools.eval_risk import sig_calibration

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "risk-v1.tflite"


@pytest.mark.parametrize(
    ("scores", "rate", "expected"),
    [
        ([-50, -40, -30, -20], 0.25, -29),  # one may be flagged: just above the second highest
        ([-50, -40, -30, -20], 0.5, -39),
        ([-50, -40, -30, -20], 0.0, -19),  # none: above the highest
        ([-30, -30, -30, -30], 0.25, -29),  # ties: flagging one would flag four
        ([127, 127], 0.0, cal.NEVER),  # nothing an int8 reaches
        (list(range(-100, 0)), 0.01, -1),  # 1 of 100
        (list(range(-100, 0)), 0.001, 0),
    ],
)
def test_threshold_for_rate(scores: list[int], rate: float, expected: int) -> None:
    t = cal.threshold_for_rate(scores, rate)
    assert t == expected
    assert sum(q >= t for q in scores) <= rate * len(scores)


@pytest.mark.parametrize("rate", [-0.1, 1.0, float("nan")])
def test_threshold_for_rate__bad_rate(rate: float) -> None:
    with pytest.raises(cal.CalibrationError, match="rate"):
        cal.threshold_for_rate([1, 2], rate)


def test_threshold_for_rate__no_scores() -> None:
    with pytest.raises(cal.CalibrationError, match="no genuine scores"):
        cal.threshold_for_rate([], 0.01)


def test_kind_thresholds__hold_before_step_up_refused() -> None:
    with pytest.raises(cal.CalibrationError, match="above hold_q"):
        cal.KindThresholds(step_up_q=-10, hold_q=-20)


def test_calibrate__hold_rate_above_step_up_rate_refused() -> None:
    with pytest.raises(cal.CalibrationError, match="hold_rate"):
        cal.calibrate({"phone": [1, 2, 3]}, step_up_rate=0.01, hold_rate=0.1)


def test_from_json__names_the_missing_field(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"model_id": "m", "kinds": {}}))
    with pytest.raises(cal.CalibrationError, match="model_sha256"):
        cal.load(path)


def test_shipped_calibration_matches_the_model() -> None:
    shipped = cal.load(sig_calibration.calibration_path(MODEL))
    scorer = Scorer.load(MODEL)
    assert shipped.model_sha256 == scorer.model_sha256.hex()
    assert set(shipped.kinds) == {"phone", "wearable", "fridge", "ev"}
    assert shipped.hold_rate <= 0.001 and shipped.step_up_rate <= 0.01


def test_shipped_calibration_holds_on_a_fresh_cohort() -> None:
    """The shipped thresholds on devices none of the calibration's (the eval seed range): the
    genuine step-up rate stays near the 1 % goal and impostors are still caught. Margins fit a
    cohort of 800 sessions per kind."""
    shipped = cal.load(sig_calibration.calibration_path(MODEL))
    scorer = Scorer.load(MODEL)
    genuine, impostor = sig_calibration.scores(scorer, 2_900_000, 160, 20, 1)
    for kind, t in shipped.kinds.items():
        assert cal.flagged_rate(genuine[kind], t.step_up_q) <= 0.025, kind
        assert cal.flagged_rate(genuine[kind], t.hold_q) <= 0.005, kind
        assert cal.flagged_rate(impostor[kind], t.step_up_q) >= 0.8, kind

"""The verdict on the server's score: per-kind thresholds, tamper codes, unscored events and the
freeze streak, on hand-made values (no model)."""

from __future__ import annotations

import pytest

from cloud_bridge.risk.calibration import KindThresholds
from cloud_bridge.risk.verdict import Level, Scored, Signal, Thresholds, judge

T = Thresholds(
    kinds={"phone": KindThresholds(-20, -5), "fridge": KindThresholds(-50, -30)},
    freeze_after=2,
    mismatch=Level.HOLD,
    unscored=Level.STEP_UP,
)
NONE: frozenset[Signal] = frozenset()


@pytest.mark.parametrize(
    ("kind", "scored", "level", "reasons"),
    [
        ("phone", Scored(-21), Level.ALLOW, ()),
        ("phone", Scored(-20), Level.STEP_UP, ("score_step_up",)),
        ("phone", Scored(-6), Level.STEP_UP, ("score_step_up",)),
        ("phone", Scored(-5), Level.HOLD, ("score_hold",)),
        # the same q on another kind: the fridge's thresholds are far lower
        ("fridge", Scored(-21), Level.HOLD, ("score_hold",)),
        ("fridge", Scored(-40), Level.STEP_UP, ("score_step_up",)),
        # a device that lied about its score: held whatever the server's q
        ("phone", Scored(-100, ("score_mismatch",)), Level.HOLD, ("score_mismatch",)),
        ("phone", Scored(-100, ("features_mismatch",)), Level.HOLD, ("features_mismatch",)),
        # no score: the unscored level, with why
        ("phone", Scored(None), Level.STEP_UP, ("unscored",)),
        ("phone", Scored(None, ("unknown_model",)), Level.STEP_UP, ("unknown_model",)),
        ("toaster", Scored(-100), Level.STEP_UP, ("uncalibrated_kind",)),
        # a trigger carrying its report's score and tamper codes
        ("phone", Scored(-10, ("score_mismatch",), fresh=False), Level.HOLD,
         ("score_mismatch", "score_step_up")),
    ],
)  # fmt: skip
def test_judge__levels_and_reasons(
    kind: str, scored: Scored, level: Level, reasons: tuple[str, ...]
) -> None:
    v = judge(kind, scored, 0, NONE, T)
    assert (v.level, v.reasons) == (level, reasons)


def test_judge__the_mismatch_and_unscored_levels_come_from_the_thresholds() -> None:
    strict = Thresholds(T.kinds, 2, mismatch=Level.FREEZE, unscored=Level.HOLD)
    assert judge("phone", Scored(-100, ("score_mismatch",)), 0, NONE, strict).level is Level.FREEZE
    assert judge("phone", Scored(None), 0, NONE, strict).level is Level.HOLD


def test_judge__hold_level_scores_in_a_row_freeze_and_a_low_one_resets() -> None:
    first = judge("phone", Scored(0), 0, NONE, T)
    assert (first.level, first.streak) == (Level.HOLD, 1)
    second = judge("phone", Scored(0), first.streak, NONE, T)
    assert (second.level, second.reasons, second.streak) == (Level.FREEZE, ("score_freeze",), 2)
    reset = judge("phone", Scored(-50), first.streak, NONE, T)
    assert (reset.level, reset.streak) == (Level.ALLOW, 0)


def test_judge__a_trigger_neither_advances_nor_resets_the_streak() -> None:
    carried = judge("phone", Scored(0, fresh=False), 1, NONE, T)
    assert (carried.level, carried.streak) == (Level.HOLD, 1)  # not a freeze: no new evidence
    low = judge("phone", Scored(-50, fresh=False), 1, NONE, T)
    assert (low.level, low.streak) == (Level.ALLOW, 1)


@pytest.mark.parametrize("signal", [Signal.SEQ_CONFLICT, Signal.BOOT_REGRESSION])
def test_judge__a_clone_signal_freezes_at_once(signal: Signal) -> None:
    v = judge("phone", Scored(-100), 0, frozenset({signal}), T)
    assert (v.level, v.reasons, v.clone) == (Level.FREEZE, (signal.value,), True)

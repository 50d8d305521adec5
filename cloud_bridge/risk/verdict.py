"""allow / step_up / hold / freeze from the device score, the device's recent history and the
bridge's own anomaly signals. Pure: the caller persists `streak`."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Level(enum.StrEnum):
    """The risk verdict on one event (the `decision` field of the published decision)."""

    ALLOW = "allow"
    STEP_UP = "step_up"
    HOLD = "hold"
    FREEZE = "freeze"


class Signal(enum.StrEnum):
    """Anomalies only the bridge can see. Both mean a copied key on another board."""

    SEQ_CONFLICT = "seq_conflict"  # a sequence number reused with other content
    BOOT_REGRESSION = "boot_regression"  # a boot counter that went backwards


CLONE_SIGNALS = frozenset({Signal.SEQ_CONFLICT, Signal.BOOT_REGRESSION})


@dataclass(frozen=True, slots=True)
class Thresholds:
    step_up_pm: int = 500
    hold_pm: int = 800
    freeze_pm: int = 950
    freeze_after: int = 2


@dataclass(frozen=True, slots=True)
class Verdict:
    level: Level
    reasons: tuple[str, ...]
    streak: int  # consecutive scores at or above freeze_pm, including this one
    clone: bool = False  # frozen on a clone signal, not on the device's own score


def judge(risk_pm: int, streak: int, anomalies: frozenset[Signal], t: Thresholds) -> Verdict:
    """One event's verdict. A copied key (clone signals) freezes at once; a high device score
    freezes only after `freeze_after` in a row, so one odd session holds instead."""
    clone = sorted(anomalies & CLONE_SIGNALS)
    if clone:
        return Verdict(Level.FREEZE, tuple(s.value for s in clone), streak + 1, clone=True)
    if risk_pm >= t.freeze_pm:
        streak += 1
        if streak >= t.freeze_after:
            return Verdict(Level.FREEZE, (f"device_risk_{risk_pm}pm_x{streak}",), streak)
        return Verdict(Level.HOLD, (f"device_risk_{risk_pm}pm",), streak)
    if risk_pm >= t.hold_pm:
        return Verdict(Level.HOLD, (f"device_risk_{risk_pm}pm",), 0)
    if risk_pm >= t.step_up_pm:
        return Verdict(Level.STEP_UP, (f"device_risk_{risk_pm}pm",), 0)
    return Verdict(Level.ALLOW, (), 0)

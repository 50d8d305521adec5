"""allow / step_up / hold / freeze from the device score, the device's recent history and the
bridge's own anomaly signals. Pure: the caller persists `streak`."""

from __future__ import annotations

from dataclasses import dataclass

ALLOW, STEP_UP, HOLD, FREEZE = "allow", "step_up", "hold", "freeze"
CLONE_SIGNALS = frozenset({"seq_conflict", "boot_regression"})


@dataclass(frozen=True)
class Thresholds:
    step_up_pm: int = 500
    hold_pm: int = 800
    freeze_pm: int = 950
    freeze_after: int = 2


@dataclass(frozen=True)
class Verdict:
    decision: str
    reasons: tuple[str, ...]
    streak: int  # consecutive scores at or above freeze_pm, including this one


def judge(risk_pm: int, streak: int, anomalies: frozenset[str], t: Thresholds) -> Verdict:
    """One event's verdict. A copied key (clone signals) freezes at once; a high device score
    freezes only after `freeze_after` in a row, so one odd session holds instead."""
    clone = sorted(anomalies & CLONE_SIGNALS)
    if clone:
        return Verdict(FREEZE, tuple(clone), streak + 1)
    if risk_pm >= t.freeze_pm:
        streak += 1
        if streak >= t.freeze_after:
            return Verdict(FREEZE, (f"device_risk_{risk_pm}pm_x{streak}",), streak)
        return Verdict(HOLD, (f"device_risk_{risk_pm}pm",), streak)
    if risk_pm >= t.hold_pm:
        return Verdict(HOLD, (f"device_risk_{risk_pm}pm",), 0)
    if risk_pm >= t.step_up_pm:
        return Verdict(STEP_UP, (f"device_risk_{risk_pm}pm",), 0)
    return Verdict(ALLOW, (), 0)

"""allow / step_up / hold / freeze from the bridge's own score of an event, the device's recent
history and the bridge's anomaly signals. Pure: the caller persists `streak`.

The score is the server's (`cloud_bridge.risk.server_score`): the model's int8 output q on the
input the bridge rebuilt from the report's fingerprint and the enrolled baseline. The device's
own `risk_pm` is never a threshold input; when it disagrees with the model, that is a tamper
signal (`mismatch` level, default hold). Thresholds are per device kind, from the model's
calibration file (`cloud_bridge.risk.calibration`) with any overrides of bridge.toml.

    clone signal (seq conflict, boot regression)    freeze at once
    q >= hold_q of the kind                         hold; `freeze_after` in a row: freeze
    q >= step_up_q                                  step_up
    features / score mismatch                       the `mismatch` level (default hold)
    no server score (unknown model, bad fingerprint,
      uncalibrated kind, a trigger before any report) the `unscored` level (default step_up)

The verdict is the highest level any rule gives; its reasons list every rule that fired.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from cloud_bridge.risk.calibration import KindThresholds
from cloud_bridge.risk.policy import SignalPolicy


class Level(enum.StrEnum):
    """The risk verdict on one event (the `decision` field of the published decision)."""

    ALLOW = "allow"
    STEP_UP = "step_up"
    HOLD = "hold"
    FREEZE = "freeze"


LEVEL_ORDER = (Level.ALLOW, Level.STEP_UP, Level.HOLD, Level.FREEZE)


def highest(*levels: Level) -> Level:
    return max(levels, key=LEVEL_ORDER.index)


class Signal(enum.StrEnum):
    """Anomalies only the bridge can see. Both mean a copied key on another board."""

    SEQ_CONFLICT = "seq_conflict"  # a sequence number reused with other content
    BOOT_REGRESSION = "boot_regression"  # a boot counter that went backwards


CLONE_SIGNALS = frozenset({Signal.SEQ_CONFLICT, Signal.BOOT_REGRESSION})


class Because(enum.StrEnum):
    """Reason codes of a score verdict (in the decision's `reasons` and the risk notes)."""

    STEP_UP_SCORE = "score_step_up"  # the server's q reached the kind's step-up threshold
    HOLD_SCORE = "score_hold"
    FREEZE_SCORE = "score_freeze"  # `freeze_after` hold-level scores in a row
    UNSCORED = "unscored"  # a trigger with no scored report of its device yet
    UNCALIBRATED = "uncalibrated_kind"  # no thresholds for the device's kind
    # The tamper codes of cloud_bridge.risk.server_score.Tamper are reasons too.


MISMATCH_CODES = frozenset({"features_mismatch", "score_mismatch"})
"""Tamper codes that mean the device lied about its input or its score."""


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Per-kind score thresholds and what the judge does when it cannot trust or get a score."""

    kinds: Mapping[str, KindThresholds]
    freeze_after: int = 2
    mismatch: Level = Level.HOLD
    unscored: Level = Level.STEP_UP
    signals: SignalPolicy = field(default_factory=SignalPolicy)


@dataclass(frozen=True, slots=True)
class Evidence:
    """The per-device signals' findings on one event (`cloud_bridge.risk.signals.observe`):
    their codes, the sum of their weights, and how far the device's own score history moves
    its kind's thresholds up (`Centre.shift_q`)."""

    codes: tuple[str, ...] = ()
    points: int = 0
    shift_q: int = 0


NO_EVIDENCE = Evidence()
CLONE_CODES = frozenset(
    {
        "boot_regression",
        "seq_conflict",
        "mono_regression",
        "clock_ahead",
        "skew_mismatch",
        "fingerprint_mismatch",
        "fingerprint_replay",
    }
)
"""Evidence of a second board: a freeze they reach is a clone freeze."""


@dataclass(frozen=True, slots=True)
class Scored:
    """What the bridge knows of one event's score: its own q (None when it has none), the
    tamper codes of the device's claims, and whether the score is new (a report) or the last
    report's carried to a trigger (which must not advance the streak)."""

    output_q: int | None
    tamper: tuple[str, ...] = ()
    fresh: bool = True


@dataclass(frozen=True, slots=True)
class Verdict:
    level: Level
    reasons: tuple[str, ...]
    streak: int  # consecutive fresh scores at or above the kind's hold threshold
    clone: bool = False  # frozen on a clone signal, not on a score


def points_level(points: int, policy: SignalPolicy) -> Level:
    """The level the signals' points reach on their own."""
    if points >= policy.freeze_points:
        return Level.FREEZE
    if points >= policy.hold_points:
        return Level.HOLD
    if points >= policy.step_up_points:
        return Level.STEP_UP
    return Level.ALLOW


def judge(
    kind: str,
    scored: Scored,
    streak: int,
    anomalies: frozenset[Signal],
    t: Thresholds,
    evidence: Evidence = NO_EVIDENCE,
) -> Verdict:
    """One event's verdict from every signal: the server score against the kind's thresholds
    (moved up by the device's `shift_q`), the tamper codes, the bridge's clone signals, and the
    per-device signals' points. The highest level wins; the reasons list every finding. A
    copied key (clone signals) freezes at once; a high server score freezes only after
    `freeze_after` in a row, so one odd session holds instead."""
    clone = sorted(anomalies & CLONE_SIGNALS)
    if clone:
        reasons = (*(s.value for s in clone), *(c for c in evidence.codes if c not in clone))
        return Verdict(Level.FREEZE, reasons, streak + 1, clone=True)
    v = _scored_verdict(kind, scored, streak, t, evidence.shift_q)
    if not evidence.codes:
        return v
    by_points = points_level(evidence.points, t.signals)
    level = highest(v.level, by_points)
    is_clone = level is Level.FREEZE and by_points is Level.FREEZE
    is_clone = is_clone and any(c in CLONE_CODES for c in evidence.codes)
    return replace(v, level=level, reasons=(*v.reasons, *evidence.codes), clone=is_clone)


def _scored_verdict(kind: str, scored: Scored, streak: int, t: Thresholds, shift_q: int) -> Verdict:
    level, reasons = Level.ALLOW, list(scored.tamper)
    if any(code in MISMATCH_CODES for code in scored.tamper):
        level = t.mismatch
    kt = t.kinds.get(kind)
    if kt is not None:
        kt = kt.shifted(shift_q)
    q = scored.output_q
    if q is None or kt is None:
        if q is None and not scored.tamper:
            reasons.append(Because.UNSCORED.value)
        if q is not None:
            reasons.append(Because.UNCALIBRATED.value)
        return Verdict(highest(level, t.unscored), tuple(reasons), streak)
    if q >= kt.hold_q:
        streak = streak + 1 if scored.fresh else streak
        if streak >= t.freeze_after and scored.fresh:
            return Verdict(Level.FREEZE, (*reasons, Because.FREEZE_SCORE.value), streak)
        return Verdict(highest(level, Level.HOLD), (*reasons, Because.HOLD_SCORE.value), streak)
    if scored.fresh:
        streak = 0
    if q >= kt.step_up_q:
        reasons.append(Because.STEP_UP_SCORE.value)
        level = highest(level, Level.STEP_UP)
    return Verdict(level, tuple(reasons), streak)

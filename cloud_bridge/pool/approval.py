"""Automated approval: an application's score and the user's devices -> approve, refer, decline.

Pure: a function of values (the scorecard's `Score`, the `DeviceSignals` the caller read from
the registry and the pool's history, the policy). The CLI (`cloud-bridge pool apply`) reads the
signals, calls `decide_application`, and opens the pool with the approved limit and rate.

Order of the rules (the first reasons are the ones that decided):
1. risk history: `approval.decline_risk_freezes` or more past risk freezes decline
   (`risk_history`); `approval.refer_risk_freezes` or more refer;
2. devices: fewer than `approval.min_devices` enrolled, unrevoked devices refer
   (`no_enrolled_device`); a revoked device refers (`device_revoked`);
3. an application with more than `approval.max_missing_attributes` blank attributes refers
   (`incomplete_application`);
4. the PD, lowered by `trusted_device_pd_credit_bps` per device enrolled for at least
   `trusted_device_days` (up to `max_trusted_devices`), declines at `decline_min_pd_bps` or
   more (`high_pd`), refers between the bands (`pd_between_bands`), and approves at
   `approve_max_pd_bps` or less.
Every decision carries the scorecard's reasons after these, ranked by points lost, at most
`approval.top_reasons`: a decline always says what weighed most.

An approved limit falls linearly from `max_limit_fen` at PD 0 to `limits.min_fen` at the
approval band's edge, rounded down to `limit_step_fen`; the rate rises from `base_rate_bps` by
`rate_per_pd_pct_bps` per percent of PD, capped at `max_rate_bps`. Money is integer fen.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cloud_bridge.pool.policy import Policy
from cloud_bridge.pool.scorecard import Score

DAY_MS = 86_400_000


class Outcome(enum.StrEnum):
    APPROVE = "approve"
    REFER = "refer"
    DECLINE = "decline"


class Reason(enum.StrEnum):
    """Reasons from the device and history rules (scorecard reasons are attribute names)."""

    RISK_HISTORY = "risk_history"
    NO_ENROLLED_DEVICE = "no_enrolled_device"
    DEVICE_REVOKED = "device_revoked"
    INCOMPLETE_APPLICATION = "incomplete_application"
    HIGH_PD = "high_pd"
    PD_BETWEEN_BANDS = "pd_between_bands"


@dataclass(frozen=True)
class DeviceSignals:
    """What the bridge knows of the user's devices: each unrevoked device's enrollment time,
    how many were revoked, and how many times the user's pool was frozen for risk."""

    enrolled_ms: tuple[int, ...] = ()
    revoked: int = 0
    risk_freezes: int = 0

    def __post_init__(self) -> None:
        for name, value in (("revoked", self.revoked), ("risk_freezes", self.risk_freezes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")

    def trusted(self, now_ms: int, days: int) -> int:
        """Devices enrolled at least `days` days before `now_ms`."""
        return sum(1 for at in self.enrolled_ms if now_ms - at >= days * DAY_MS)


@dataclass(frozen=True)
class ApplicationDecision:
    """The answer to one application. `limit_fen` and `rate_bps` are 0 unless approved."""

    outcome: Outcome
    limit_fen: int
    rate_bps: int
    score_points: int
    pd_bps: int  # the scorecard's calibrated PD
    adjusted_pd_bps: int  # after the trusted-device credit: what the bands judge
    reasons: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "limit_fen": self.limit_fen,
            "rate_bps": self.rate_bps,
            "score_points": self.score_points,
            "pd_bps": self.pd_bps,
            "adjusted_pd_bps": self.adjusted_pd_bps,
            "reasons": list(self.reasons),
        }


def decide_application(
    score: Score, devices: DeviceSignals, now_ms: int, policy: Policy
) -> ApplicationDecision:
    """The decision on one application (see the module docstring for the rules)."""
    a = policy.approval
    trusted = min(devices.trusted(now_ms, a.trusted_device_days), a.max_trusted_devices)
    adjusted = max(0, score.pd_bps - trusted * a.trusted_device_pd_credit_bps)
    refer: list[str] = []
    decline: list[str] = []
    if devices.risk_freezes >= a.decline_risk_freezes:
        decline.append(Reason.RISK_HISTORY)
    elif devices.risk_freezes >= a.refer_risk_freezes:
        refer.append(Reason.RISK_HISTORY)
    if len(devices.enrolled_ms) < a.min_devices:
        refer.append(Reason.NO_ENROLLED_DEVICE)
    if devices.revoked:
        refer.append(Reason.DEVICE_REVOKED)
    if len(score.missing) > a.max_missing_attributes:
        refer.append(Reason.INCOMPLETE_APPLICATION)
    if adjusted >= a.decline_min_pd_bps:
        decline.append(Reason.HIGH_PD)
    elif adjusted > a.approve_max_pd_bps:
        refer.append(Reason.PD_BETWEEN_BANDS)
    ranked = _ranked(decline + refer, score.reasons, a.top_reasons)
    if decline or refer:
        return ApplicationDecision(
            Outcome.DECLINE if decline else Outcome.REFER,
            0,
            0,
            score.points,
            score.pd_bps,
            adjusted,
            ranked,
        )
    return ApplicationDecision(
        Outcome.APPROVE,
        approved_limit_fen(adjusted, policy),
        approved_rate_bps(adjusted, policy),
        score.points,
        score.pd_bps,
        adjusted,
        ranked,
    )


def approved_limit_fen(pd_bps: int, policy: Policy) -> int:
    """The limit for an approved PD: linear from max_limit_fen (PD 0) to limits.min_fen (the
    approval edge), down to a multiple of limit_step_fen, within the policy's limit range."""
    a, lo = policy.approval, policy.limits.min_fen
    hi = min(a.max_limit_fen, policy.limits.max_fen)
    if hi <= lo:
        return lo
    edge = max(a.approve_max_pd_bps, 1)
    share = max(0, edge - pd_bps)
    limit = lo + (hi - lo) * share // edge
    limit -= limit % a.limit_step_fen
    return max(lo, min(limit, hi))


def approved_rate_bps(pd_bps: int, policy: Policy) -> int:
    """base_rate_bps plus rate_per_pd_pct_bps per whole percent of PD, at most max_rate_bps."""
    a = policy.approval
    return min(a.max_rate_bps, a.base_rate_bps + a.rate_per_pd_pct_bps * pd_bps // 100)


def _ranked(rules: Sequence[str], scorecard: Sequence[str], top: int) -> tuple[str, ...]:
    return (*[str(r) for r in rules], *scorecard[:top])

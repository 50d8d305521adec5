"""Score thresholds per device kind, derived from measured genuine rates. Pure.

The model's output is an int8 logit `q` (agent.scoring). A fixed per-mille threshold fits no
kind: on held-out genuine sessions the 99th percentile of q is about -27 for phones and
wearables but -55 for fridges and EVs, so one threshold either steps up 5 % of genuine phone
reports or lets impostors on fridges through. Here each kind gets the lowest q at which at most
`step_up_rate` (and `hold_rate`) of its genuine sessions score at or above it; the verdict flags
`q >= threshold`.

The thresholds live in a calibration file beside the model (`models/<model>.calibration.json`),
written by `python -m tools.eval_risk calibration --write` from a simulated cohort, or by the
same function from the server scores of live genuine traffic (docs/risk.md says how).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud_bridge.errors import BridgeError
from cloud_bridge.risk.fingerprint import IDENTITY_NAMES, FingerprintError, IdentityScales

Q_MIN, Q_MAX = -128, 127
NEVER = Q_MAX + 1
"""A threshold no int8 score reaches: the level is never taken."""


class CalibrationError(BridgeError):
    """A calibration file that cannot be used; the message says which field and why."""


@dataclass(frozen=True, slots=True)
class KindThresholds:
    """Flag a score `q` of this kind at step-up when `q >= step_up_q`, hold when `q >= hold_q`.
    `centre_q` is the median genuine score of the kind (None: not measured); a device whose
    own scores sit above it gets its thresholds re-centred (`cloud_bridge.risk.signals`)."""

    step_up_q: int
    hold_q: int
    centre_q: int | None = None

    def __post_init__(self) -> None:
        for name in ("step_up_q", "hold_q"):
            v = getattr(self, name)
            if type(v) is not int or not Q_MIN <= v <= NEVER:
                raise CalibrationError(f"{name} must be an int from {Q_MIN} to {NEVER}, got {v!r}")
        if self.step_up_q > self.hold_q:
            raise CalibrationError(
                f"step_up_q {self.step_up_q} is above hold_q {self.hold_q}; a hold must never "
                "be reached before a step-up"
            )

    def shifted(self, shift_q: int) -> KindThresholds:
        """These thresholds moved up by `shift_q` (a device's re-centring), capped at NEVER."""
        if shift_q == 0:
            return self
        up = min(NEVER, self.step_up_q + shift_q), min(NEVER, self.hold_q + shift_q)
        return KindThresholds(*up, self.centre_q)


@dataclass(frozen=True, slots=True)
class Calibration:
    """The thresholds of one model, per device kind, and the rates they were derived for."""

    model_id: str
    model_sha256: str  # hex
    step_up_rate: float
    hold_rate: float
    kinds: Mapping[str, KindThresholds]
    source: Mapping[str, Any]  # how it was measured (cohort, sessions), for the record
    # Between-session sd of each board measure (fingerprint distances); None: not fitted.
    identity_scales: IdentityScales | None = None

    def for_kind(self, kind: str) -> KindThresholds | None:
        return self.kinds.get(kind)

    def to_json(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "model_sha256": self.model_sha256,
            "step_up_rate": self.step_up_rate,
            "hold_rate": self.hold_rate,
            "kinds": {
                k: {"step_up_q": t.step_up_q, "hold_q": t.hold_q}
                | ({} if t.centre_q is None else {"centre_q": t.centre_q})
                for k, t in sorted(self.kinds.items())
            },
            "source": dict(self.source),
        } | _scales_json(self.identity_scales)


def threshold_for_rate(genuine_q: Sequence[int], rate: float) -> int:
    """The lowest q such that at most `rate` of `genuine_q` are >= q: one above the highest
    genuine score that must not be flagged (NEVER when even the highest must not be).

    >>> threshold_for_rate([-50, -40, -30, -20], 0.25)
    -29
    >>> threshold_for_rate([-50, -40, -30, -30], 0.25)
    -29
    >>> threshold_for_rate([-50, -40, -30, -20], 0.0)
    -19
    """
    if not genuine_q:
        raise CalibrationError("no genuine scores to calibrate on")
    if not 0.0 <= rate < 1.0 or math.isnan(rate):
        raise CalibrationError(f"rate must be in [0, 1), got {rate!r}")
    ordered = sorted(genuine_q)
    allowed = math.floor(rate * len(ordered) + 1e-9)  # how many genuine scores may be flagged
    return min(ordered[len(ordered) - allowed - 1] + 1, NEVER)


def calibrate(
    genuine: Mapping[str, Sequence[int]], step_up_rate: float, hold_rate: float
) -> dict[str, KindThresholds]:
    """Thresholds per kind from each kind's genuine scores."""
    if hold_rate > step_up_rate:
        raise CalibrationError(f"hold_rate {hold_rate} is above step_up_rate {step_up_rate}")
    return {
        kind: KindThresholds(
            threshold_for_rate(qs, step_up_rate),
            threshold_for_rate(qs, hold_rate),
            sorted(qs)[len(qs) // 2],
        )
        for kind, qs in genuine.items()
    }


def flagged_rate(scores: Sequence[int], threshold: int) -> float:
    """The fraction of `scores` at or above `threshold`."""
    return sum(1 for q in scores if q >= threshold) / len(scores) if scores else 0.0


def from_json(doc: Mapping[str, Any], where: str = "calibration") -> Calibration:
    try:
        kinds = {
            str(k): KindThresholds(
                int(v["step_up_q"]),
                int(v["hold_q"]),
                None if v.get("centre_q") is None else int(v["centre_q"]),
            )
            for k, v in dict(doc["kinds"]).items()
        }
        cal = Calibration(
            model_id=str(doc["model_id"]),
            model_sha256=str(doc["model_sha256"]),
            step_up_rate=float(doc["step_up_rate"]),
            hold_rate=float(doc["hold_rate"]),
            kinds=kinds,
            source=dict(doc.get("source", {})),
            identity_scales=_scales(doc.get("identity_scales")),
        )
    except (KeyError, TypeError, ValueError, FingerprintError) as exc:
        raise CalibrationError(f"{where}: missing or malformed field: {exc}") from exc
    if not kinds:
        raise CalibrationError(f"{where}: no device kind is calibrated")
    return cal


def _scales_json(scales: IdentityScales | None) -> dict[str, Any]:
    return {} if scales is None else {"identity_scales": scales.to_json()}


def _scales(doc: Any) -> IdentityScales | None:
    if doc is None:
        return None
    return IdentityScales(tuple(float(doc[name]) for name in IDENTITY_NAMES))


def load(path: Path) -> Calibration:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CalibrationError(f"cannot read the calibration file {path}: {exc}") from exc
    return from_json(doc, str(path))

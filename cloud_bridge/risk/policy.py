"""Every threshold and weight of the bridge's per-device risk signals, declared once.

`SignalPolicy` is the `[risk_signals]` section of bridge.toml: each field is a confschema key
(default, range, help), so the TOML reader, the constructor's checks, the docs and
`cloud-bridge config` read the same declaration (the pattern of `cloud_bridge.pool.policy`).
The modules that use the knobs take their own policy objects (`ClonePolicy`, `DriftPolicy`,
`travel.Policy`), built here from this one section.

How the signals combine (`cloud_bridge.risk.signals`): each piece of evidence an event gives
adds its weight in points; the sum reaches `step_up_points`, `hold_points` or `freeze_points`
for that level. A weight of 0 lists the evidence among the decision's reasons and changes
nothing.

Integers only: distances and rates in the units their names say (`_ms`, `_ppm`, `_m`, `_kmh`,
`_pm` per mille).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from cloud_bridge.errors import BridgeError
from cloud_bridge.risk.clone import ClonePolicy
from cloud_bridge.risk.fingerprint import DriftPolicy
from cloud_bridge.risk.sequence import Policy as SequencePolicy
from cloud_bridge.risk.touch import SPREAD_CAPS
from cloud_bridge.risk.touch import Policy as TouchPolicy
from cloud_bridge.risk.travel import Policy as TravelPolicy
from confschema import Key, SchemaError, check_fields, integer, key_field

SECTION = "risk_signals"
MAX_POINTS = 1000


class SignalPolicyError(BridgeError):
    """A `[risk_signals]` value that cannot be used; the message names the key and the fix."""


def _knob(default: int, lo: int, hi: int, help: str) -> Any:
    return key_field(Key(default, integer(lo, hi), help=help))


def _weight(default: int, what: str) -> Any:
    return _knob(default, 0, MAX_POINTS, f"points added by {what}")


@dataclass(frozen=True)
class SignalPolicy:
    """The `[risk_signals]` knobs; see the module docstring."""

    # ---- how evidence becomes a level ----
    step_up_points: int = _knob(30, 1, MAX_POINTS, "points at which an event is stepped up")
    hold_points: int = _knob(60, 1, MAX_POINTS, "points at which an event is held")
    freeze_points: int = _knob(100, 1, MAX_POINTS, "points at which the pool is frozen")
    # ---- weights (cloud_bridge.risk.clone.Evidence, fingerprint drift, travel) ----
    mono_regression: int = _weight(100, "mono_ms going backwards within one boot")
    clock_ahead: int = _weight(60, "mono_ms ahead of the device's clock line")
    skew_mismatch: int = _weight(30, "a boot's clock skew off the crystal's")
    fingerprint_mismatch: int = _weight(30, "fp_hits of fp_window fingerprints beyond fp_limit")
    fingerprint_replay: int = _weight(100, "a fingerprint seen before, bit for bit")
    fingerprint_drift: int = _weight(0, "a running own-baseline distance over drift_limit")
    impossible_travel: int = _weight(60, "a located event too far from the user's last")
    implausible_sequence: int = _weight(30, "a run of triggers unlike the user's own")
    boot_regression: int = _weight(100, "a data message from an older boot")
    seq_conflict: int = _weight(100, "a sequence number again with another mono_ms")
    # ---- clone evidence (ClonePolicy) ----
    fp_limit: int = _knob(25, 1, 1000, "fingerprint distance to the enrolled baseline that counts")
    fp_hits: int = _knob(2, 1, 64, "reports beyond fp_limit among the last fp_window")
    fp_window: int = _knob(4, 1, 64, "fingerprinted reports fp_hits counts over")
    seq_memory: int = _knob(32, 1, 1024, "(seq, mono_ms) remembered per device and boot")
    ahead_allow_ms: int = _knob(2000, 1, 3_600_000, "how far above its clock line mono_ms may be")
    ahead_slack_ppm: int = _knob(20, 1, 10_000, "more allowance per second from the tangent point")
    fit_min_span_s: int = _knob(600, 1, 86_400, "clock line used once it spans this long")
    max_skew_ppm: int = _knob(100, 1, 100_000, "a clock line with more skew is not used")
    skew_min_span_s: int = _knob(14_400, 1, 864_000, "a boot this long before skew_mismatch")
    skew_min_edge_s: int = _knob(14_400, 1, 864_000, "an LP edge this long before skew_mismatch")
    skew_tolerance_ppm: int = _knob(20, 1, 10_000, "skew difference from the crystal's allowed")
    replay_memory: int = _knob(64, 1, 1024, "fingerprint digests remembered per device")
    # ---- fingerprint drift (DriftPolicy) ----
    drift_weight_pm: int = _knob(50, 1, 1000, "weight of each report in the running distance")
    drift_limit: int = _knob(12, 1, 1000, "running own-baseline distance that means drift")
    drift_min_reports: int = _knob(20, 1, 100_000, "reports before drift is called")
    # ---- impossible travel (travel.Policy) ----
    max_speed_kmh: int = _knob(1000, 1, 99_999, "least speed between fixes that is impossible")
    gps_floor_m: int = _knob(10, 0, 20_000_000, "least radius of a GPS fix")
    cell_floor_m: int = _knob(5_000, 0, 20_000_000, "least radius of a cell fix")
    ip_floor_m: int = _knob(500_000, 0, 20_000_000, "least radius of a GeoIP fix")
    # ---- transaction-sequence plausibility per user (sequence.Policy) ----
    seq_min_events: int = _knob(20, 10, 10_000, "a user's allowed triggers before judging them")
    seq_window: int = _knob(60, 10, 1_000, "a user's latest allowed triggers the model fits")
    seq_drift_cnats: int = _knob(200, 0, 10_000, "surprise (1/100 nat) a trigger may carry")
    seq_alarm_cnats: int = _knob(300, 1, 100_000, "accumulated surprise (1/100 nat) that flags")
    # ---- touch behaviour of step-up confirmations (touch.Policy) ----
    touch_enrol: int = _knob(4, 1, 100, "a user's confirmations with strokes that enrol")
    touch_keep: int = _knob(8, 1, 100, "a user's latest counted confirmations the template fits")
    touch_min_strokes: int = _knob(5, 1, 16, "strokes a confirmation needs to be judged")
    touch_limit_x100: int = _knob(
        3000, 1, 1_000_000, "scaled Manhattan distance x 100 beyond which strokes mismatch"
    )
    touch_learn_x100: int = _knob(
        1500, 0, 1_000_000, "distance x 100 within which a matched confirmation is learnt"
    )
    touch_max_refusals: int = _knob(
        3, 0, 100, "touch refusals in a row that refuse a user's step-ups until reset (0: never)"
    )
    touch_require_strokes: int = _knob(
        1, 0, 1, "1: once enrolled, a confirmation without strokes is refused; 0: it counts"
    )
    # ---- per-device re-centring of the score thresholds (item 1 of issue 13) ----
    centre_min_reports: int = _knob(10, 1, 100_000, "allowed reports before re-centring")
    centre_max_shift_q: int = _knob(24, 0, 255, "most a device's thresholds move up, in q")
    centre_step_q16: int = _knob(16, 1, 256, "median tracker's step per report, 1/16 q")

    def __post_init__(self) -> None:
        try:
            check_fields(self, SECTION)
        except SchemaError as exc:
            raise SignalPolicyError(exc.problem.message()) from None
        if not self.step_up_points <= self.hold_points <= self.freeze_points:
            raise SignalPolicyError(
                f"[{SECTION}] step_up_points = {self.step_up_points}, hold_points = "
                f"{self.hold_points}, freeze_points = {self.freeze_points} must rise; "
                "for example: 30, 60, 100"
            )
        if self.seq_min_events > self.seq_window:
            raise SignalPolicyError(
                f"[{SECTION}] seq_min_events = {self.seq_min_events} must be <= seq_window = "
                f"{self.seq_window}; for example: seq_min_events = 20, seq_window = 60"
            )
        if self.touch_enrol > self.touch_keep:
            raise SignalPolicyError(
                f"[{SECTION}] touch_enrol = {self.touch_enrol} must be <= touch_keep = "
                f"{self.touch_keep}; for example: touch_enrol = 4, touch_keep = 8"
            )
        if self.touch_learn_x100 > self.touch_limit_x100:
            raise SignalPolicyError(
                f"[{SECTION}] touch_learn_x100 = {self.touch_learn_x100} must be <= "
                f"touch_limit_x100 = {self.touch_limit_x100}; for example: touch_learn_x100 = "
                f"{self.touch_limit_x100 // 2}"
            )
        if self.fp_hits > self.fp_window:
            raise SignalPolicyError(
                f"[{SECTION}] fp_hits = {self.fp_hits} must be <= fp_window = "
                f"{self.fp_window}; for example: fp_hits = 2, fp_window = 4"
            )

    def weight(self, code: str) -> int:
        """The points of an evidence code (0 for one without a weight)."""
        value = getattr(self, code, 0) if code in _WEIGHTS else 0
        return int(value)

    @functools.cached_property
    def clone(self) -> ClonePolicy:
        return ClonePolicy(
            fp_limit=float(self.fp_limit),
            fp_hits=self.fp_hits,
            fp_window=self.fp_window,
            seq_memory=self.seq_memory,
            ahead_allow_ms=float(self.ahead_allow_ms),
            ahead_slack_ppm=float(self.ahead_slack_ppm),
            fit_min_span_s=float(self.fit_min_span_s),
            max_skew_ppm=float(self.max_skew_ppm),
            skew_min_span_s=float(self.skew_min_span_s),
            skew_min_edge_s=float(self.skew_min_edge_s),
            skew_tolerance_ppm=float(self.skew_tolerance_ppm),
            replay_memory=self.replay_memory,
        )

    @functools.cached_property
    def drift(self) -> DriftPolicy:
        return DriftPolicy(
            self.drift_weight_pm / 1000, float(self.drift_limit), self.drift_min_reports
        )

    @functools.cached_property
    def travel(self) -> TravelPolicy:
        return TravelPolicy(
            float(self.max_speed_kmh),
            {"gps": self.gps_floor_m, "cell": self.cell_floor_m, "ip": self.ip_floor_m},
        )

    @functools.cached_property
    def touch(self) -> TouchPolicy:
        return TouchPolicy(
            self.touch_enrol, self.touch_keep, self.touch_min_strokes, self.touch_limit_x100 / 100,
            self.touch_learn_x100 / 100, self.touch_max_refusals,
            bool(self.touch_require_strokes), SPREAD_CAPS,
        )  # fmt: skip

    @functools.cached_property
    def sequence(self) -> SequencePolicy:
        return SequencePolicy(self.seq_drift_cnats / 100, self.seq_alarm_cnats / 100)


_WEIGHTS = frozenset(
    {
        "mono_regression",
        "clock_ahead",
        "skew_mismatch",
        "fingerprint_mismatch",
        "fingerprint_replay",
        "fingerprint_drift",
        "impossible_travel",
        "implausible_sequence",
        "boot_regression",
        "seq_conflict",
    }
)
"""The evidence codes that have a weight knob (each the name of its field)."""

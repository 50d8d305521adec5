"""Touch behaviour: how far a window of a user's strokes lies from their enrolled template.

Touchalytics (Frank et al., IEEE TIFS 2013) showed that scrolling strokes identify a person
(2-3 % equal error rate across sessions). The template here is the per-feature mean and mean
absolute deviation of the enrolment strokes (agent.strokes.features); a window of recent strokes
is averaged feature by feature and compared with it by the scaled Manhattan distance of
Killourhy and Maxion (DSN 2009), which weighs each feature by its own spread, so a feature in
milliseconds does not drown one in screen fractions. The plain Euclidean distance is kept for
comparison (tools.eval_risk.sig_touch measures both).

In the decision: a phone's step-up confirmation carries the features of the confirming swipes
(protocol.strokes). The user's template is enrolled from their first `enrol` confirmations and
refitted on the latest `keep` counted ones (`Memory`, kept in the user's risk memory,
cloud_bridge.risk.user_signals), each confirmation weighing the same whatever its stroke count.
Once it exists:

- a confirmation whose window lies beyond `limit` does not count (`touch_mismatch`), nor one
  with fewer than `min_strokes` plausible strokes (`touch_missing`: a patched agent sending none),
  unless `require_strokes` is off;
- after `max_refusals` such refusals in a row the user's step-ups are refused at once
  (`touch_locked`) until an operator resets the count (`cloud-bridge touch reset`); a matched
  confirmation resets it;
- a matched confirmation is learnt only within `learn_limit`, well inside the limit, so that the
  template cannot be walked towards someone else one borderline confirmation at a time.

Strokes whose values lie outside what a finger on a screen can give (`implausible`) are
dropped, as if none came. Each feature's spread lies between a floor of several wire steps (a
feature constant at enrolment must not lock its owner out over one step of rounding) and, in
the bridge's policy, a per-feature cap (strokes scattered on purpose must not widen the template
until anything matches). Pure: values in, values out.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from protocol.strokes import STROKE_FEATURES, STROKE_SCALE

MIN_ENROL_STROKES = 10
MIN_SPREAD = 10 / STROKE_SCALE
"""The least spread of a feature: ten wire steps (one step off then adds 0.1 to the distance)."""


@dataclass(frozen=True, slots=True)
class Bound:
    """What a feature can be on a real screen (`lo`..`hi`), and the most its spread may be in a
    template (`cap`: about three times the widest a simulated owner shows, docs/risk.md)."""

    lo: float
    hi: float
    cap: float


_EDGE = 1.0  # beyond the screen's edge: a finger sliding off it (and agent.simulator.swipe,
# which does not clip its strokes to the screen: 4 in 6,000 of its owners' confirmations reach
# past 1.5); far from the values that would poison a template
_ANGLE = math.pi + 1 / STROKE_SCALE  # atan2's range, and one wire step of rounding
BOUNDS: dict[str, Bound] = {
    "start_x": Bound(-_EDGE, 1 + _EDGE, 0.15),
    "start_y": Bound(-_EDGE, 1 + _EDGE, 0.15),
    "stop_x": Bound(-_EDGE, 1 + _EDGE, 0.25),
    "stop_y": Bound(-_EDGE, 1 + _EDGE, 0.25),
    "duration_ms": Bound(1 / STROKE_SCALE, 10_000.0, 75.0),  # > 0: features divide by it
    "direct_dist": Bound(0.0, 3.0, 0.15),
    "length_ratio": Bound(0.0, 1.0, 0.05),
    "direction": Bound(-_ANGLE, _ANGLE, 0.25),
    "mean_speed": Bound(0.0, 100.0, 5.0),
    "speed_p20": Bound(0.0, 100.0, 4.0),
    "speed_p50": Bound(0.0, 100.0, 5.0),
    "speed_p80": Bound(0.0, 100.0, 8.0),
    "max_deviation": Bound(-10.0, 10.0, 0.08),
    "mid_pressure": Bound(0.0, 4.0, 0.15),
    "mid_area": Bound(0.0, 4.0, 0.08),
    "peak_at": Bound(0.0, 1.0, 0.25),
}
"""Per feature of protocol.strokes.STROKE_FEATURES (positions and distances in screen widths
or heights, speeds in heights per second, pressure and area as the platform reports them)."""
SPREAD_CAPS = tuple(BOUNDS[f].cap for f in STROKE_FEATURES)


class TouchError(ValueError):
    """Enrolment or a window that cannot be used (too few strokes, mismatched lengths)."""


@dataclass(frozen=True)
class Template:
    """Per-feature mean and mean absolute deviation of a user's enrolment strokes."""

    mean: tuple[float, ...]
    spread: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.spread) or not self.mean:
            raise TouchError("mean and spread must be non-empty and of one length")
        if any(not s > 0 for s in self.spread):
            raise TouchError("every spread must be positive")


def enrol(strokes: Sequence[Sequence[float]], caps: Sequence[float] = ()) -> Template:
    """The template of a user's enrolment strokes (feature vectors), each weighing the same."""
    return fit([strokes], caps)


def fit(groups: Sequence[Sequence[Sequence[float]]], caps: Sequence[float] = ()) -> Template:
    """The template of groups of strokes (a user's confirmations), each group weighing the
    same whatever its number of strokes; each spread floored at MIN_SPREAD and, with `caps`
    (one a feature), capped."""
    groups = [g for g in groups if g]
    if sum(len(g) for g in groups) < MIN_ENROL_STROKES:
        raise TouchError(f"enrolment needs at least {MIN_ENROL_STROKES} strokes")
    width = _width([s for g in groups for s in g])
    if caps and len(caps) != width:
        raise TouchError("one spread cap a feature")
    k = len(groups)
    mean = tuple(sum(sum(s[i] for s in g) / len(g) for g in groups) / k for i in range(width))
    spread = tuple(
        max(MIN_SPREAD, sum(sum(abs(s[i] - mean[i]) for s in g) / len(g) for g in groups) / k)
        for i in range(width)
    )
    if caps:
        spread = tuple(max(MIN_SPREAD, min(s, c)) for s, c in zip(spread, caps, strict=True))
    return Template(mean, spread)


def implausible(strokes: Sequence[Sequence[float]]) -> str | None:
    """What makes these strokes (all STROKE_FEATURES each) impossible on a real screen, if
    anything: the first feature out of its BOUNDS, named with its value."""
    for n, stroke in enumerate(strokes):
        if len(stroke) != len(STROKE_FEATURES):
            return f"stroke {n} has {len(stroke)} features, not {len(STROKE_FEATURES)}"
        for name, value in zip(STROKE_FEATURES, stroke, strict=True):
            b = BOUNDS[name]
            if not b.lo <= value <= b.hi:
                return f"stroke {n}: {name} = {value:g} outside {b.lo:g}..{b.hi:g}"
    return None


def _width(rows: Sequence[Sequence[float]]) -> int:
    if not rows:
        raise TouchError("no strokes")
    width = len(rows[0])
    if any(len(r) != width for r in rows):
        raise TouchError("every stroke must have the same number of features")
    return width


def _window_mean(template: Template, window: Sequence[Sequence[float]]) -> list[float]:
    if _width(window) != len(template.mean):
        raise TouchError("the window's features do not match the template's")
    return [sum(s[i] for s in window) / len(window) for i in range(len(template.mean))]


def scaled_manhattan(template: Template, window: Sequence[Sequence[float]]) -> float:
    """Sum over features of |window mean - template mean| / template spread."""
    avg = _window_mean(template, window)
    return sum(abs(a - m) / s for a, m, s in zip(avg, template.mean, template.spread, strict=True))


def euclidean(template: Template, window: Sequence[Sequence[float]]) -> float:
    """The unscaled distance between the window mean and the template mean."""
    avg = _window_mean(template, window)
    return math.sqrt(sum((a - m) ** 2 for a, m in zip(avg, template.mean, strict=True)))


# ---- a user's template in the decision (step-up confirmations) --------------------------------


class Evidence(enum.StrEnum):
    """What a confirmation's strokes say about who confirmed."""

    NONE = "none"  # no template yet and too few strokes to enrol (an older agent, the ESP32)
    ENROLLING = "enrolling"  # the user has no template yet: these strokes may become it
    MATCH = "match"  # within the limit of the user's template
    MISMATCH = "mismatch"  # beyond it: someone else swiped (TOUCH_MISMATCH)
    MISSING = "missing"  # a template exists, too few strokes came (TOUCH_MISSING)
    LOCKED = "locked"  # max_refusals in a row: refused until an operator resets (TOUCH_LOCKED)


TOUCH_MISMATCH = "touch_mismatch"
"""The reason code of a confirmation refused because its strokes are not the user's."""
TOUCH_MISSING = "touch_missing"
"""... refused because it came without (enough plausible) strokes once the template exists."""
TOUCH_LOCKED = "touch_locked"
"""... or a step-up refused at once: the user's touch refusals reached `max_refusals`."""
TOUCH_IMPLAUSIBLE = "touch_implausible"
"""A confirmation's strokes out of what a screen can give: dropped, no evidence (an alert)."""
REFUSED = frozenset({Evidence.MISMATCH, Evidence.MISSING, Evidence.LOCKED})
"""The evidence that refuses a confirmation."""


@dataclass(frozen=True, slots=True)
class Policy:
    """From `[risk_signals]` (cloud_bridge.risk.policy): `enrol` confirmations make the
    template, the strokes of the latest `keep` counted confirmations are what it is fitted on,
    a confirmation needs `min_strokes` strokes to be judged (once the template exists, fewer
    refuse it while `require_strokes`), a window distance over `limit` is a mismatch, a match is
    learnt within `learn_limit`, `max_refusals` refusals in a row lock the user's step-ups (0:
    never), and `spread_caps` (one a feature, or none) cap the template's spreads."""

    enrol: int
    keep: int
    min_strokes: int
    limit: float
    learn_limit: float
    max_refusals: int
    require_strokes: bool = True
    spread_caps: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= self.enrol <= self.keep or self.min_strokes < 1 or not self.limit > 0:
            raise TouchError("need 1 <= enrol <= keep, min_strokes >= 1 and limit > 0")
        if not 0 <= self.learn_limit <= self.limit or self.max_refusals < 0:
            raise TouchError("need 0 <= learn_limit <= limit and max_refusals >= 0")


@dataclass(frozen=True, slots=True)
class Memory:
    """The strokes (features in their units) of a user's latest counted confirmations, oldest
    first (the template is a function of them, so only they are kept), and the touch refusals
    since the last match."""

    confirmations: tuple[tuple[tuple[float, ...], ...], ...] = ()
    refusals: int = 0


@dataclass(frozen=True, slots=True)
class Judged:
    evidence: Evidence
    distance: float | None = None  # the scaled Manhattan distance, when judged


def template(memory: Memory, policy: Policy) -> Template | None:
    """The user's template, once `enrol` confirmations with enough strokes are kept."""
    if len(memory.confirmations) < policy.enrol:
        return None
    if sum(len(c) for c in memory.confirmations) < MIN_ENROL_STROKES:
        return None
    return fit(memory.confirmations, policy.spread_caps)


def locked(memory: Memory, policy: Policy) -> bool:
    """Whether the user's step-ups are refused at once (until an operator resets the count)."""
    return 0 < policy.max_refusals <= memory.refusals


def judge(memory: Memory, strokes: Sequence[Sequence[float]], policy: Policy) -> Judged:
    """A confirmation's strokes against the user's template."""
    if locked(memory, policy):
        return Judged(Evidence.LOCKED)
    known = template(memory, policy)
    if len(strokes) < policy.min_strokes:
        missing = known is not None and policy.require_strokes
        return Judged(Evidence.MISSING if missing else Evidence.NONE)
    if known is None:
        return Judged(Evidence.ENROLLING)
    distance = scaled_manhattan(known, strokes)
    return Judged(Evidence.MISMATCH if distance > policy.limit else Evidence.MATCH, distance)


def learn(
    memory: Memory, strokes: Sequence[Sequence[float]], judged: Judged, policy: Policy
) -> Memory:
    """The memory after a confirmation settled its step-up: enrolling strokes are kept, and
    matching ones within `learn_limit` (so the template follows the user's slow change of
    habit); a match resets the refusal count, a mismatch or missing strokes add one; no
    evidence (or a locked user) changes nothing."""
    if judged.evidence in (Evidence.MISMATCH, Evidence.MISSING):
        return replace(memory, refusals=memory.refusals + 1)
    if judged.evidence is Evidence.MATCH:
        memory = replace(memory, refusals=0)
        if judged.distance is None or judged.distance > policy.learn_limit:
            return memory
    elif judged.evidence is not Evidence.ENROLLING:
        return memory
    kept = (*memory.confirmations, tuple(tuple(s) for s in strokes))
    return replace(memory, confirmations=kept[-policy.keep :])

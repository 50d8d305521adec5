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
cloud_bridge.risk.user_signals); once it exists, a confirmation whose window lies beyond `limit`
does not count: the held action is refused with `touch_mismatch` (cloud_bridge.stepups). Pure:
values in, values out.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

MIN_ENROL_STROKES = 10
MIN_SPREAD = 1e-6  # a feature that never varied at enrolment must not divide by zero


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


def enrol(strokes: Sequence[Sequence[float]]) -> Template:
    """The template of a user's enrolment strokes (feature vectors)."""
    if len(strokes) < MIN_ENROL_STROKES:
        raise TouchError(f"enrolment needs at least {MIN_ENROL_STROKES} strokes")
    width = _width(strokes)
    n = len(strokes)
    mean = tuple(sum(s[i] for s in strokes) / n for i in range(width))
    spread = tuple(
        max(MIN_SPREAD, sum(abs(s[i] - mean[i]) for s in strokes) / n) for i in range(width)
    )
    return Template(mean, spread)


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

    NONE = "none"  # no strokes, or too few to judge (an older agent, a device without a screen)
    ENROLLING = "enrolling"  # the user has no template yet: these strokes may become it
    MATCH = "match"  # within the limit of the user's template
    MISMATCH = "mismatch"  # beyond it: someone else swiped (TOUCH_MISMATCH)


TOUCH_MISMATCH = "touch_mismatch"
"""The reason code of a confirmation refused because its strokes are not the user's."""


@dataclass(frozen=True, slots=True)
class Policy:
    """From `[risk_signals]` (cloud_bridge.risk.policy): `enrol` confirmations make the
    template, the strokes of the latest `keep` counted confirmations are what it is fitted on,
    a confirmation needs `min_strokes` strokes to be judged, and a window distance over `limit`
    is a mismatch."""

    enrol: int
    keep: int
    min_strokes: int
    limit: float

    def __post_init__(self) -> None:
        if not 1 <= self.enrol <= self.keep or self.min_strokes < 1 or not self.limit > 0:
            raise TouchError("need 1 <= enrol <= keep, min_strokes >= 1 and limit > 0")


@dataclass(frozen=True, slots=True)
class Memory:
    """The strokes (features in their units) of a user's latest counted confirmations, oldest
    first: the template is a function of them, so only they are kept."""

    confirmations: tuple[tuple[tuple[float, ...], ...], ...] = ()


@dataclass(frozen=True, slots=True)
class Judged:
    evidence: Evidence
    distance: float | None = None  # the scaled Manhattan distance, when judged


def template(memory: Memory, policy: Policy) -> Template | None:
    """The user's template, once `enrol` confirmations with enough strokes are kept."""
    if len(memory.confirmations) < policy.enrol:
        return None
    strokes = [s for c in memory.confirmations for s in c]
    return enrol(strokes) if len(strokes) >= MIN_ENROL_STROKES else None


def judge(memory: Memory, strokes: Sequence[Sequence[float]], policy: Policy) -> Judged:
    """A confirmation's strokes against the user's template."""
    if len(strokes) < policy.min_strokes:
        return Judged(Evidence.NONE)
    known = template(memory, policy)
    if known is None:
        return Judged(Evidence.ENROLLING)
    distance = scaled_manhattan(known, strokes)
    return Judged(Evidence.MISMATCH if distance > policy.limit else Evidence.MATCH, distance)


def learn(
    memory: Memory, strokes: Sequence[Sequence[float]], judged: Judged, policy: Policy
) -> Memory:
    """The memory after a confirmation that counted: enrolling and matching strokes are kept
    (so the template follows the user's slow change of habit); a mismatch or no evidence
    changes nothing."""
    if judged.evidence not in (Evidence.ENROLLING, Evidence.MATCH):
        return memory
    kept = (*memory.confirmations, tuple(tuple(s) for s in strokes))
    return Memory(kept[-policy.keep :])

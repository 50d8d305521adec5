"""Touch behaviour: how far a window of a user's strokes lies from their enrolled template.

Touchalytics (Frank et al., IEEE TIFS 2013) showed that scrolling strokes identify a person
(2-3 % equal error rate across sessions). The template here is the per-feature mean and mean
absolute deviation of the enrolment strokes (agent.strokes.features); a window of recent strokes
is averaged feature by feature and compared with it by the scaled Manhattan distance of
Killourhy and Maxion (DSN 2009), which weighs each feature by its own spread, so a feature in
milliseconds does not drown one in screen fractions. The plain Euclidean distance is kept for
comparison (tools.eval_risk.sig_touch measures both). Pure: values in, a distance out.
"""

from __future__ import annotations

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

"""Touch strokes and their Touchalytics features: pure functions of the points.

A stroke (Frank et al., "Touchalytics", IEEE TIFS 2013) is the trajectory between a touch-down
and its lift. Its features describe where and how a person swipes, not what they swipe at; the
device computes them and the cloud compares them with the user's enrolled template
(cloud_bridge.risk.touch). Positions are divided by the screen size so that devices of one user
with different screens stay comparable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from protocol.strokes import STROKE_FEATURES

MIN_POINTS = 3

FEATURES = STROKE_FEATURES  # their order on the wire is the contract's (protocol.strokes)


class StrokeError(ValueError):
    """A stroke that cannot be measured (too few points, time not increasing, bad screen)."""


@dataclass(frozen=True)
class Stroke:
    """Points of one touch, in order: time (ms from touch-down), position (px), pressure and
    finger area (0-1, as the platform reports them)."""

    t_ms: tuple[int, ...]
    x_px: tuple[float, ...]
    y_px: tuple[float, ...]
    pressure: tuple[float, ...]
    area: tuple[float, ...]
    screen_w_px: int
    screen_h_px: int

    def __post_init__(self) -> None:
        n = len(self.t_ms)
        if n < MIN_POINTS:
            raise StrokeError(f"a stroke needs at least {MIN_POINTS} points, got {n}")
        if any(len(v) != n for v in (self.x_px, self.y_px, self.pressure, self.area)):
            raise StrokeError("t_ms, x_px, y_px, pressure and area must have one value a point")
        if any(b <= a for a, b in zip(self.t_ms, self.t_ms[1:], strict=False)):
            raise StrokeError("t_ms must increase from point to point")
        if self.screen_w_px <= 0 or self.screen_h_px <= 0:
            raise StrokeError("the screen size must be positive")


def _percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (pos - lo) * (sorted_values[hi] - sorted_values[lo])


def features(stroke: Stroke) -> tuple[float, ...]:
    """The stroke's values in the order of FEATURES."""
    h, w = stroke.screen_h_px, stroke.screen_w_px
    xs = [x / h for x in stroke.x_px]  # both axes in screen heights: distances stay isotropic
    ys = [y / h for y in stroke.y_px]
    n = len(xs)
    steps = [math.hypot(xs[i + 1] - xs[i], ys[i + 1] - ys[i]) for i in range(n - 1)]
    speeds = [d * 1000.0 / (stroke.t_ms[i + 1] - stroke.t_ms[i]) for i, d in enumerate(steps)]
    duration = stroke.t_ms[-1] - stroke.t_ms[0]
    dx, dy = xs[-1] - xs[0], ys[-1] - ys[0]
    direct = math.hypot(dx, dy)
    path = sum(steps)
    deviation = 0.0
    if direct > 0:
        for x, y in zip(xs, ys, strict=True):
            d = ((x - xs[0]) * dy - (y - ys[0]) * dx) / direct  # signed: which way it bows
            if abs(d) > abs(deviation):
                deviation = d
    ranked = sorted(speeds)
    mid = n // 2
    peak = max(range(len(speeds)), key=speeds.__getitem__)
    return (
        stroke.x_px[0] / w,
        stroke.y_px[0] / h,
        stroke.x_px[-1] / w,
        stroke.y_px[-1] / h,
        float(duration),
        direct,
        direct / path if path > 0 else 1.0,
        math.atan2(dy, dx),
        path * 1000.0 / duration,
        _percentile(ranked, 0.2),
        _percentile(ranked, 0.5),
        _percentile(ranked, 0.8),
        deviation / direct if direct > 0 else 0.0,
        stroke.pressure[mid],
        stroke.area[mid],
        (stroke.t_ms[peak] + stroke.t_ms[peak + 1]) / 2.0 / duration,
    )

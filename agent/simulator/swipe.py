"""Swipes of a person scrolling a page: the strokes that Touchalytics (Frank et al., IEEE TIFS
2013) authenticates on.

A stroke is a touch-down, a movement and a lift: points sampled at the screen's touch rate with
position (px), pressure and finger area. Every person has their own habits (where on the screen
the thumb lands, how long and fast the swipe is, how it bows, how hard it presses); a session
moves each habit a little (posture, grip, the phone's angle); each stroke scatters around the
session's habit. The spreads are assumptions of this simulation, not measurements; the matcher
(agent.strokes, cloud_bridge.risk.touch) sees only the points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from agent.strokes import Stroke

SCREEN_W_PX, SCREEN_H_PX = 1080, 2340
TOUCH_HZ = 120.0
STROKES_PER_SESSION = 40

# (population mean, population sd, stroke-to-stroke sd) of each habit.
HABITS: dict[str, tuple[float, float, float]] = {
    "x0": (0.62, 0.12, 0.035),  # landing point, fraction of the width
    "y0": (0.70, 0.08, 0.04),  # fraction of the height
    "length": (0.30, 0.07, 0.035),  # swipe length, fraction of the height
    "angle": (-1.45, 0.20, 0.05),  # direction (radians; -pi/2 is straight up)
    "duration_ms": (150.0, 40.0, 18.0),
    "bow": (0.06, 0.05, 0.015),  # sideways bulge at mid-stroke, fraction of the length
    "peak": (0.45, 0.08, 0.03),  # where in the stroke the speed peaks (0-1)
    "pressure": (0.45, 0.10, 0.025),
    "area": (0.20, 0.05, 0.012),
}
SESSION_SHIFT = 0.25  # a session moves each habit by this fraction of its population sd


@dataclass(frozen=True)
class SwipeHabit:
    """One person's habits (means of HABITS)."""

    means: tuple[float, ...]

    @classmethod
    def draw(cls, rng: np.random.Generator) -> SwipeHabit:
        return cls(tuple(float(rng.normal(mu, sd)) for mu, sd, _ in HABITS.values()))

    def session(self, rng: np.random.Generator, strokes: int = STROKES_PER_SESSION) -> list[Stroke]:
        """One session's strokes."""
        shifted = [
            m + rng.normal(0.0, SESSION_SHIFT * sd)
            for m, (_, sd, _) in zip(self.means, HABITS.values(), strict=True)
        ]
        out = []
        for _ in range(strokes):
            h = dict(
                zip(
                    HABITS,
                    (
                        s + rng.normal(0.0, noise)
                        for s, (_, _, noise) in zip(shifted, HABITS.values(), strict=True)
                    ),
                    strict=True,
                )
            )
            out.append(_stroke(h, rng))
        return out


def _stroke(h: dict[str, float], rng: np.random.Generator) -> Stroke:
    duration = max(40.0, h["duration_ms"])
    n = max(4, int(duration * TOUCH_HZ / 1000.0))
    length = max(0.05, h["length"]) * SCREEN_H_PX
    x0, y0 = h["x0"] * SCREEN_W_PX, h["y0"] * SCREEN_H_PX
    dx, dy = math.cos(h["angle"]), math.sin(h["angle"])
    # Progress along the stroke: the minimum-jerk profile, its time warped so the speed peaks
    # at `peak` of the duration.
    peak = min(0.8, max(0.2, h["peak"]))
    warp = math.log(0.5) / math.log(peak)
    t_ms, xs, ys, ps, areas = [], [], [], [], []
    for i in range(n + 1):
        tau = (i / n) ** warp
        s = 10 * tau**3 - 15 * tau**4 + 6 * tau**5
        side = h["bow"] * length * math.sin(math.pi * s)
        xs.append(x0 + s * length * dx - side * dy + rng.normal(0.0, 1.0))
        ys.append(y0 + s * length * dy + side * dx + rng.normal(0.0, 1.0))
        t_ms.append(round(i * 1000.0 / TOUCH_HZ))
        bulge = 0.8 + 0.2 * math.sin(math.pi * s)
        ps.append(max(0.01, h["pressure"] * bulge + rng.normal(0.0, 0.01)))
        areas.append(max(0.01, h["area"] * bulge + rng.normal(0.0, 0.005)))
    return Stroke(
        t_ms=tuple(t_ms),
        x_px=tuple(xs),
        y_px=tuple(ys),
        pressure=tuple(ps),
        area=tuple(areas),
        screen_w_px=SCREEN_W_PX,
        screen_h_px=SCREEN_H_PX,
    )

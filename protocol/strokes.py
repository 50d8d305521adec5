"""The optional touch strokes of a report (key 23): the Touchalytics features of the swipes
that went with it, in fixed point. Split from protocol.messages, which re-exports every name.

A phone answering a step-up sends the features of the confirming swipe(s) (Frank et al.,
"Touchalytics", IEEE TIFS 2013; agent.strokes computes them) so that the bridge can compare them
with the user's template (cloud_bridge.risk.touch). The contract has no floats: each feature
travels as round(value x STROKE_SCALE), one array of STROKE_FEATURES values a stroke. A report
without the key (an older agent, the ESP32, a device without a screen) carries no touch evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

STROKE_FEATURES = (
    "start_x",  # where the touch landed, fraction of the screen width
    "start_y",  # ... fraction of the screen height
    "stop_x",
    "stop_y",
    "duration_ms",
    "direct_dist",  # start to stop, fraction of the screen height
    "length_ratio",  # direct distance / trajectory length (1: a straight line)
    "direction",  # radians of the start-to-stop vector
    "mean_speed",  # screen heights per second
    "speed_p20",
    "speed_p50",
    "speed_p80",
    "max_deviation",  # largest signed distance from the start-stop line, fraction of its length
    "mid_pressure",
    "mid_area",
    "peak_at",  # where (fraction of the duration) the speed peaks
)
"""The features of one stroke, in their order on the wire."""
STROKE_SCALE = 10_000
"""Fixed point of every feature: the value times 10^4, rounded (duration_ms: 0.1 microsecond)."""
MAX_STROKES = 16
STROKE_VALUE_MAX = (1 << 31) - 1
"""Every fixed-point value lies in -STROKE_VALUE_MAX..STROKE_VALUE_MAX (a signed 32-bit int)."""

FixedStroke = tuple[int, ...]


def to_fixed(values: Sequence[float]) -> FixedStroke:
    """A stroke's features (in the order of STROKE_FEATURES) as they travel; ValueError if a
    value does not fit."""
    if len(values) != len(STROKE_FEATURES):
        raise ValueError(f"a stroke has {len(STROKE_FEATURES)} features, got {len(values)}")
    out = tuple(round(v * STROKE_SCALE) for v in values)
    if any(abs(v) > STROKE_VALUE_MAX for v in out):
        raise ValueError("a stroke feature is out of the fixed-point range")
    return out


def from_fixed(stroke: Sequence[int]) -> tuple[float, ...]:
    """The features of a stroke as received, in their own units."""
    return tuple(v / STROKE_SCALE for v in stroke)


@dataclass(frozen=True)
class Strokes:
    """Field type of the optional `strokes` (key 23): at most MAX_STROKES arrays of exactly
    len(STROKE_FEATURES) signed 32-bit integers."""

    def check(self, value: Any) -> tuple[FixedStroke, ...]:
        if not isinstance(value, list | tuple) or len(value) > MAX_STROKES:
            raise ValueError(f"must be an array of at most {MAX_STROKES} strokes")
        width = len(STROKE_FEATURES)
        out = []
        for stroke in value:
            if not isinstance(stroke, list | tuple) or len(stroke) != width:
                raise ValueError(f"each stroke must be an array of {width} integers")
            for item in stroke:
                if type(item) is not int or not -STROKE_VALUE_MAX <= item <= STROKE_VALUE_MAX:
                    raise ValueError(
                        f"stroke values must be integers from {-STROKE_VALUE_MAX} to "
                        f"{STROKE_VALUE_MAX}"
                    )
            out.append(tuple(stroke))
        return tuple(out)

"""Clock skew of a device from its reports' `mono_ms` against the bridge's receive time.

Kohno, Broido and claffy, "Remote physical device fingerprinting" (IEEE S&P 2005): a board's
crystal runs fast or slow by a few ppm, steadily, and a remote observer measures that skew from
the timestamps the board sends. Every report carries `mono_ms` (the device's monotonic clock
when it made the report) and the bridge notes when it arrived. Against receive time x the
offset

    y = (mono_ms - mono_ms_0) - (received - received_0)          [ms, relative to the first]

grows by skew * x, less the network delay of each report (and up to 1 ms of `mono_ms`
truncation). Delay only ever pushes a point down, so the points lie below the line
skew * x + c, with many close to it.

Two estimators:

- least squares (`ls_fit`): the line through the cloud; the delay's spread is its noise.
- the linear-programming bound of Moon, Skelly and Towsley ("Estimation and removal of clock
  skew from network delay measurements", IEEE INFOCOM 1999), as Kohno et al. use it: the line
  above every point that minimises the summed vertical distance to them. The objective is
  n * (a * mean(x) + b) - sum(y), so the optimum is the edge of the points' upper convex hull
  that spans mean(x) (`lp_fit`). It uses the least-delayed points only, so it is not misled by
  the delay's long tail.

`Envelope` is the incremental form the bridge keeps per device and boot: a frozen value,
`add` returns the next one. Points must arrive in increasing receive time (they do: the bridge
stamps them as they arrive). The upper hull of points sorted by x is maintained by Andrew's
monotone chain, so an update costs amortised O(1) and the hull stays small (a few dozen
vertices for a day of reports).

Pure: no clock is read here; the caller passes both times.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from cloud_bridge.errors import BridgeError

PPM_PER_MS_PER_S = 1000.0  # a slope of 1 ms per second is 1000 ppm


class SkewError(BridgeError):
    """Points that cannot give a skew (too few, or out of receive order)."""


@dataclass(frozen=True, slots=True)
class SkewFit:
    """A fitted offset line: `skew_ppm` (positive: the device clock runs fast) and the offset
    at the first point, in ms; `points` and `span_s` say how much data it rests on.

    `on_newest` (LP only): the line rests on the newest point. That point may have been
    delayed (the first of a backlog burst): until a later report confirms it by hiding it
    below the hull, the line can tilt by the whole delay over the span, so callers that
    extrapolate wait. `edge_s` (LP only): the length of the hull edge the line lies on; a
    short edge (the hull follows a skew that moved with temperature) gives a local, noisier
    slope.
    """

    skew_ppm: float
    offset_ms: float
    points: int
    span_s: float
    on_newest: bool = False
    edge_s: float = 0.0

    def offset_at(self, x_s: float) -> float:
        """The line's offset (ms) at x_s seconds after the first point."""
        return self.offset_ms + x_s * self.skew_ppm / PPM_PER_MS_PER_S


Point = tuple[float, float]  # (x seconds of receive time, y offset ms), relative to the first


def _cross(o: Point, a: Point, b: Point) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _push_upper(hull: list[Point], p: Point) -> None:
    """Append p (x above every hull x) to an upper hull, dropping vertices it hides."""
    while len(hull) >= 2 and _cross(hull[-2], hull[-1], p) >= 0:
        hull.pop()
    hull.append(p)


def _lp_fit(hull: Sequence[Point], mean_x: float, points: int, span_s: float) -> SkewFit:
    """The line of the upper-hull edge spanning mean_x: the LP optimum."""
    for i, (a, b) in enumerate(itertools.pairwise(hull)):
        if a[0] <= mean_x <= b[0]:
            slope = (b[1] - a[1]) / (b[0] - a[0])
            return SkewFit(
                skew_ppm=slope * PPM_PER_MS_PER_S,
                offset_ms=a[1] - slope * a[0],
                points=points,
                span_s=span_s,
                on_newest=i == len(hull) - 2,
                edge_s=b[0] - a[0],
            )
    raise SkewError("the mean receive time is outside the hull")  # unreachable for valid hulls


@dataclass(frozen=True, slots=True)
class Envelope:
    """The running upper envelope of one device's offsets (one boot: `mono_ms` restarts).

    `origin` is the first point's (mono_ms, received_us); the hull holds points relative to it.
    """

    origin: tuple[int, int] | None = None
    hull: tuple[Point, ...] = ()
    points: int = 0
    sum_x: float = 0.0
    last_x: float = 0.0

    def add(self, mono_ms: int, received_us: int) -> Envelope:
        """The envelope with one more report. SkewError if received_us goes backwards."""
        if self.origin is None:
            return Envelope((mono_ms, received_us), ((0.0, 0.0),), 1, 0.0, 0.0)
        x, y = self.relative(mono_ms, received_us)
        if x <= self.last_x:
            raise SkewError(f"received_us {received_us} is not after the previous report")
        hull = list(self.hull)
        _push_upper(hull, (x, y))
        return Envelope(self.origin, tuple(hull), self.points + 1, self.sum_x + x, x)

    def relative(self, mono_ms: int, received_us: int) -> Point:
        """A report as (x s, y ms) relative to this envelope's first point."""
        if self.origin is None:
            raise SkewError("an empty envelope has no origin")
        mono0, recv0 = self.origin
        x_ms = (received_us - recv0) / 1000.0
        return x_ms / 1000.0, (mono_ms - mono0) - x_ms

    @property
    def mean_x(self) -> float:
        """Mean receive time of the points, s from the first: where the LP line is tangent."""
        return self.sum_x / self.points if self.points else 0.0

    def fit(self) -> SkewFit | None:
        """The LP fit, or None before two reports."""
        if len(self.hull) < 2:
            return None
        return _lp_fit(self.hull, self.mean_x, self.points, self.last_x)


def _points(mono_ms: Sequence[int], received_us: Sequence[int]) -> list[Point]:
    if len(mono_ms) != len(received_us):
        raise SkewError("one receive time per mono_ms is needed")
    if len(mono_ms) < 2:
        raise SkewError(f"a skew needs 2 or more reports, got {len(mono_ms)}")
    first = Envelope((mono_ms[0], received_us[0]))
    out = [first.relative(m, r) for m, r in zip(mono_ms, received_us, strict=True)]
    if any(b[0] <= a[0] for a, b in itertools.pairwise(out)):
        raise SkewError("receive times must be strictly increasing")
    return out


def lp_fit(mono_ms: Sequence[int], received_us: Sequence[int]) -> SkewFit:
    """Moon et al.'s linear-programming fit of the offsets' upper envelope."""
    pts = _points(mono_ms, received_us)
    hull: list[Point] = []
    for p in pts:
        _push_upper(hull, p)
    mean_x = sum(p[0] for p in pts) / len(pts)
    return _lp_fit(hull, mean_x, len(pts), pts[-1][0])


def ls_fit(mono_ms: Sequence[int], received_us: Sequence[int]) -> SkewFit:
    """Ordinary least squares of offset on receive time."""
    pts = _points(mono_ms, received_us)
    n = len(pts)
    mx = sum(p[0] for p in pts) / n
    my = sum(p[1] for p in pts) / n
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    sxy = sum((p[0] - mx) * (p[1] - my) for p in pts)
    slope = sxy / sxx
    return SkewFit(slope * PPM_PER_MS_PER_S, my - slope * mx, n, pts[-1][0])

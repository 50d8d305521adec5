"""Clock skew from mono_ms against receive time (cloud_bridge.risk.skew) and its evaluation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cloud_bridge.risk import skew
from tools.eval_risk import sig_skew


def _line(skew_ppm: float, n: int) -> tuple[list[int], list[int]]:
    """Reports every 1 s with no delay: received_us on the second, mono_ms exact."""
    received = [1_000_000 * i for i in range(n)]
    mono = [5_000 + round(1000 * i * (1 + skew_ppm * 1e-6)) for i in range(n)]
    return mono, received


@pytest.mark.parametrize("fit", [skew.lp_fit, skew.ls_fit])
def test_fit__exact_line(fit: object) -> None:
    # 10 ppm fast: mono gains 1 ms every 100 s; over 1000 s exactly 10 ms.
    mono, received = _line(10.0, 1001)
    result = fit(mono, received)  # type: ignore[operator]
    assert abs(result.skew_ppm - 10.0) < 0.5  # mono_ms is rounded to whole ms
    assert result.points == 1001
    assert result.span_s == 1000.0


def test_lp_fit__slow_clock_with_delays_on_top() -> None:
    # Offsets drop 20 ms over 1000 s (-20 ppm). Points 0, 500 and 1000 are undelayed; every
    # other point is 3 ms late, so the envelope must rest on those three.
    received = [1_000_000 * i for i in range(1001)]
    mono = [round(1000 * i - 0.02 * i) for i in range(1001)]
    late = [0 if i in (0, 500, 1000) else 3000 for i in range(1001)]
    received = [r + d for r, d in zip(received, late, strict=True)]
    assert skew.lp_fit(mono, received).skew_ppm == pytest.approx(-20.0, abs=1e-9)
    # Least squares sees the late points' slope error as well; it is off by more.
    assert abs(skew.ls_fit(mono, received).skew_ppm + 20.0) > 1e-6


def _brute_force_lp(points: list[tuple[float, float]]) -> float:
    """The LP optimum by trying every line through two points: feasible (no point above it)
    and least objective a * mean(x) + b. Independent of the hull code."""
    mean_x = sum(p[0] for p in points) / len(points)
    best, best_slope = float("inf"), float("nan")
    for p, q in itertools.combinations(points, 2):
        a = (q[1] - p[1]) / (q[0] - p[0])
        b = p[1] - a * p[0]
        if all(y <= a * x + b + 1e-9 for x, y in points):
            objective = a * mean_x + b
            if objective < best - 1e-12:
                best, best_slope = objective, a
    return best_slope


@pytest.mark.parametrize("seed", range(8))
def test_lp_fit__matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 25
    received = np.cumsum(rng.integers(200_000, 3_000_000, n)).tolist()
    mono = [int(r // 1000 + 7 * i - rng.exponential(4.0)) for i, r in enumerate(received)]
    env = skew.Envelope()
    for m, r in zip(mono, received, strict=True):
        env = env.add(m, r)
    points = [env.relative(m, r) for m, r in zip(mono, received, strict=True)]
    expected_ppm = _brute_force_lp(points) * skew.PPM_PER_MS_PER_S
    assert skew.lp_fit(mono, received).skew_ppm == pytest.approx(expected_ppm, rel=1e-9)
    fit = env.fit()
    assert fit is not None
    assert fit.skew_ppm == pytest.approx(expected_ppm, rel=1e-9)
    # The envelope line lies on or above every point.
    slope = fit.skew_ppm / skew.PPM_PER_MS_PER_S
    assert all(y <= slope * x + fit.offset_ms + 1e-9 for x, y in points)


def test_envelope__one_point_has_no_fit() -> None:
    env = skew.Envelope().add(10, 1_000)
    assert env.fit() is None
    assert env.points == 1


def test_envelope__receive_time_backwards_refused() -> None:
    env = skew.Envelope().add(10, 1_000_000).add(1010, 2_000_000)
    with pytest.raises(skew.SkewError, match="not after"):
        env.add(2010, 1_500_000)
    assert env.points == 2  # unchanged: add returns a new value


def test_offset_at__follows_the_line() -> None:
    env = skew.Envelope().add(0, 0).add(1010, 1_000_000)  # 10 ms gained in 1 s: 10,000 ppm
    fit = env.fit()
    assert fit is not None
    assert fit.skew_ppm == pytest.approx(10_000.0)
    assert fit.offset_at(3.0) == pytest.approx(30.0)
    assert env.mean_x == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("mono", "received", "match"),
    [
        ([1], [1], "2 or more"),
        ([1, 2], [1], "one receive time"),
        ([1, 2, 3], [5, 5, 6], "strictly increasing"),
    ],
)
def test_fit__bad_input(mono: list[int], received: list[int], match: str) -> None:
    with pytest.raises(skew.SkewError, match=match):
        skew.lp_fit(mono, received)


def test_evaluate__quick_meets_the_goal_with_margin() -> None:
    result = sig_skew.evaluate(seed=3, quick=True)
    # Full runs measure LP ~0.15 ppm and LS ~0.26 ppm RMS; 60 trials scatter more.
    assert result["lp_error_ppm_15min"] <= 0.22
    assert result["lp_error_ppm_15min"] < result["ls_error_ppm_15min"]
    assert result["lp_error_ppm_5min"] > result["lp_error_ppm_15min"]  # more data, less error


def test_lp_fit__says_when_it_rests_on_the_newest_point() -> None:
    # Live at 0 s and 1000 s, then a report that waited 500 ms: the LP edge over the mean
    # (1333 s) ends on that newest point, and tilts by its delay.
    fit = skew.lp_fit([0, 1_000_000, 3_000_000], [0, 1_000_000_000, 3_000_500_000])
    assert fit.on_newest
    assert fit.edge_s == pytest.approx(2000.5)  # x is receive time: the late one at 3000.5 s
    assert fit.skew_ppm == pytest.approx(-500.0 / 2000.5 * 1000.0)
    # One more live report hides the late one; the edge is then the whole span, flat.
    fit = skew.lp_fit([0, 1_000_000, 3_000_000, 4_000_000],
                      [0, 1_000_000_000, 3_000_500_000, 4_000_000_000])  # fmt: skip
    assert fit.skew_ppm == pytest.approx(0.0)
    assert fit.edge_s == pytest.approx(4000.0)  # collinear live points merge into one edge

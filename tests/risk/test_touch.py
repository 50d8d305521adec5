"""Touch strokes (agent.strokes), the template matcher (cloud_bridge.risk.touch) and the
cross-session equal error rate on simulated users (tools.eval_risk.sig_touch)."""

from __future__ import annotations

import math

import pytest

from agent.strokes import FEATURES, Stroke, StrokeError, features
from cloud_bridge.risk import touch
from tools.eval_risk import sig_touch


def _straight_up() -> Stroke:
    """Four points 100 px apart going straight up a 1000 x 2000 screen, 10 ms apart."""
    return Stroke(
        t_ms=(0, 10, 20, 30),
        x_px=(500.0, 500.0, 500.0, 500.0),
        y_px=(1500.0, 1400.0, 1300.0, 1200.0),
        pressure=(0.3, 0.4, 0.5, 0.4),
        area=(0.1, 0.2, 0.25, 0.2),
        screen_w_px=1000,
        screen_h_px=2000,
    )


def test_features__straight_stroke() -> None:
    f = dict(zip(FEATURES, features(_straight_up()), strict=True))
    assert f["start_x"] == 0.5 and f["start_y"] == 0.75
    assert f["stop_x"] == 0.5 and f["stop_y"] == 0.6
    assert f["duration_ms"] == 30.0
    assert f["direct_dist"] == pytest.approx(0.15)  # 300 px of a 2000 px height
    assert f["length_ratio"] == pytest.approx(1.0)
    assert f["direction"] == pytest.approx(-math.pi / 2)
    assert f["mean_speed"] == pytest.approx(5.0)  # 0.15 heights in 30 ms
    assert f["speed_p50"] == pytest.approx(5.0)
    assert f["max_deviation"] == 0.0
    assert f["mid_pressure"] == 0.5 and f["mid_area"] == 0.25


def test_features__bow_is_signed() -> None:
    s = _straight_up()
    right = Stroke(**{**s.__dict__, "x_px": (500.0, 540.0, 540.0, 500.0)})
    left = Stroke(**{**s.__dict__, "x_px": (500.0, 460.0, 460.0, 500.0)})
    i = FEATURES.index("max_deviation")
    assert features(right)[i] == pytest.approx(-features(left)[i])
    assert abs(features(right)[i]) == pytest.approx(40 / 300)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"t_ms": (0, 10)}, "at least 3"),
        ({"t_ms": (0, 10, 10, 30)}, "increase"),
        ({"area": (0.1,)}, "one value a point"),
        ({"screen_h_px": 0}, "screen"),
    ],
)
def test_stroke__invalid(change: dict[str, object], message: str) -> None:
    with pytest.raises(StrokeError, match=message):
        Stroke(**{**_straight_up().__dict__, **change})


def test_enrol_and_distances() -> None:
    rows = [(0.0, 10.0), (2.0, 30.0)] * 5  # means 1 and 20, mean absolute deviations 1 and 10
    t = touch.enrol(rows)
    assert t.mean == (1.0, 20.0) and t.spread == (1.0, 10.0)
    window = [(4.0, 20.0), (2.0, 40.0)]  # mean (3, 30)
    assert touch.scaled_manhattan(t, window) == pytest.approx(2 / 1 + 10 / 10)
    assert touch.euclidean(t, window) == pytest.approx(math.hypot(2, 10))


def test_enrol__constant_feature_does_not_divide_by_zero() -> None:
    t = touch.enrol([(1.0, 5.0)] * 10)
    assert touch.scaled_manhattan(t, [(1.0, 5.0)]) == 0.0
    assert touch.scaled_manhattan(t, [(1.0, 6.0)]) == pytest.approx(1000.0)  # floor 1e-3


@pytest.mark.parametrize(
    ("rows", "window", "message"),
    [
        ([(1.0,)] * 3, [(1.0,)], "at least 10"),
        ([(1.0,)] * 9 + [(1.0, 2.0)], [(1.0,)], "same number"),
        ([(1.0,)] * 10, [(1.0, 2.0)], "do not match"),
        ([(1.0,)] * 10, [], "no strokes"),
    ],
)
def test_touch__invalid(
    rows: list[tuple[float, ...]], window: list[tuple[float, ...]], message: str
) -> None:
    with pytest.raises(touch.TouchError, match=message):
        touch.scaled_manhattan(touch.enrol(rows), window)


def test_equal_error_rate() -> None:
    assert sig_touch.equal_error_rate([1, 2, 3], [4, 5, 6]) == 0.0
    assert sig_touch.equal_error_rate([4, 5, 6], [1, 2, 3]) == pytest.approx(1.0)
    # one genuine over and one impostor under the best threshold, out of four each
    assert sig_touch.equal_error_rate([1, 2, 3, 9], [0, 7, 8, 10]) == pytest.approx(0.25)


def test_eval__cross_session_eer() -> None:
    """The goal (3 %) on a smaller run, and scaled Manhattan well ahead of Euclidean."""
    r = sig_touch.evaluate(seed=11, quick=True)
    assert r["eer"] <= 0.03
    assert r["eer_euclidean"] > 3 * r["eer"]
    assert r["eer_single_stroke"] > r["eer"]  # a window of strokes decides better than one

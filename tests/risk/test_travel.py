"""Impossible travel (cloud_bridge.risk.travel) and its itinerary eval (sig_travel)."""

from __future__ import annotations

import math

import pytest

from cloud_bridge.risk import travel as tr
from tools.eval_risk import sig_travel

E7 = tr.E7
HOUR_MS = 3_600_000
POLICY = tr.Policy()


def fix(ts_ms: int, lat: float, lon: float, acc: int = 10, source: str = "gps") -> tr.Fix:
    return tr.Fix(ts_ms, round(lat * E7), round(lon * E7), acc, source, "phone")


def test_distance__one_degree_of_meridian() -> None:
    # 2 * pi * R / 360 on the mean radius: 111,195 m
    d = tr.distance_m(fix(0, 0.0, 0.0), fix(0, 1.0, 0.0))
    assert d == pytest.approx(2 * math.pi * tr.EARTH_RADIUS_M / 360, rel=1e-9)


def test_distance__shanghai_to_beijing() -> None:
    # published great-circle distance of the two city centres: about 1,067 km
    d = tr.distance_m(fix(0, 31.2304, 121.4737), fix(0, 39.9042, 116.4074))
    assert 1_060_000 < d < 1_075_000


def test_distance__across_the_antimeridian() -> None:
    d = tr.distance_m(fix(0, 0.0, 179.5), fix(0, 0.0, -179.5))
    assert d == pytest.approx(2 * math.pi * tr.EARTH_RADIUS_M / 360, rel=1e-9)


def test_min_distance_subtracts_both_radii_with_floors() -> None:
    a, b = fix(0, 0.0, 0.0, acc=100), fix(0, 1.0, 0.0, acc=1_000, source="cell")
    # gps radius 100 m (over its 10 m floor), cell radius 5 km (its floor, over the claimed 1 km)
    assert tr.min_distance_m(a, b, POLICY) == pytest.approx(tr.distance_m(a, b) - 5_100)
    ip = fix(0, 3.0, 0.0, acc=20_000, source="ip")  # 333 km away, floor 500 km
    assert tr.min_distance_m(a, ip, POLICY) == 0.0


def test_leg__flight_is_possible_teleport_is_not() -> None:
    shanghai, beijing = (31.2304, 121.4737), (39.9042, 116.4074)
    flight = tr.leg(fix(0, *shanghai), fix(2 * HOUR_MS, *beijing), POLICY)
    assert not flight.impossible and 500 < flight.speed_kmh < 540
    jump = tr.leg(fix(0, *shanghai), fix(HOUR_MS // 2, *beijing), POLICY)
    assert jump.impossible and jump.reason == "impossible_travel"
    assert jump.speed_kmh == pytest.approx(jump.min_distance_m / 1800 * 3.6)
    same_moment = tr.leg(fix(5, *shanghai), fix(5, *beijing), POLICY)
    assert same_moment.impossible and same_moment.speed_kmh == math.inf
    still = tr.leg(fix(5, *shanghai), fix(5, *shanghai), POLICY)
    assert not still.impossible and still.speed_kmh == 0.0


def test_leg__threshold_from_the_policy() -> None:
    a, b = fix(0, 0.0, 0.0, acc=0), fix(HOUR_MS, 3.0, 0.0, acc=0)  # about 333 km in an hour
    assert not tr.leg(a, b, tr.Policy(max_speed_kmh=400)).impossible
    assert tr.leg(a, b, tr.Policy(max_speed_kmh=250)).impossible


def test_step_keeps_the_later_event_across_devices() -> None:
    first = tr.step(tr.State(), fix(HOUR_MS, 0.0, 0.0), POLICY)
    assert first.leg is None and first.state.last is not None
    late = tr.step(first.state, fix(0, 0.0, 0.01), POLICY)  # delivered late: judged, not kept
    assert late.leg is not None and late.state.last == first.state.last
    watch = tr.Fix(2 * HOUR_MS, 0, 0, 10, "gps", "watch")
    assert tr.step(late.state, watch, POLICY).state.last == watch


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lat_e7": 91 * E7}, "out of range"),
        ({"lon_e7": -181 * E7}, "out of range"),
        ({"accuracy_m": -1}, "never negative"),
        ({"source": "wifi"}, "source must be"),
    ],
)
def test_fix__invalid(kwargs: dict[str, object], message: str) -> None:
    base: dict[str, object] = dict(ts_ms=0, lat_e7=0, lon_e7=0, accuracy_m=5, source="gps")
    with pytest.raises(tr.TravelError, match=message):
        tr.Fix(**{**base, **kwargs})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_speed_kmh": 0}, "max_speed_kmh"),
        ({"accuracy_floor_m": {"gps": 10, "cell": 10}}, "accuracy_floor_m"),
        ({"accuracy_floor_m": {"gps": -1, "cell": 10, "ip": 10}}, "accuracy_floor_m"),
    ],
)
def test_policy__invalid(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(tr.TravelError, match=message):
        tr.Policy(**kwargs)  # type: ignore[arg-type]


def test_destination_round_trip() -> None:
    lat, lon = sig_travel.destination(30.0, 120.0, 1.0, 250_000)
    d = tr.distance_m(fix(0, 30.0, 120.0), fix(0, lat, lon))
    assert d == pytest.approx(250_000, abs=1)


def test_eval__exact_and_quiet() -> None:
    r = sig_travel.evaluate(seed=21, quick=True)
    assert r["clean_accuracy"] == 1.0
    assert r["clean_impossible_legs"] > 100  # the run did test impostors
    assert r["geoip_false_alarms"] == 0
    assert r["geoip_genuine_legs"] > 1000
    assert r["geoip_detection"] > 0.9

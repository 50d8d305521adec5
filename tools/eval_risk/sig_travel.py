"""Impossible travel: exact on clean itineraries, silent under GeoIP noise.

    python -m tools.eval_risk travel --json [--seed N] [--quick]
    python -m tools.eval_risk.sig_travel --json [--seed N] [--quick]

Every simulated user makes one trip: a walk (4-6 km/h), a drive (60-130 km/h) or a flight with
dwell (a drive to the airport, 60-150 minutes there, a flight at 800-900 km/h with 20-40
minutes of taxiing, the arrival gate). Their phone and watch report located events along it,
alternating, each with a GPS or cell fix whose error stays inside its claimed radius. Half the
trips also carry an impostor: one event from a device of the user 300-8,000 km away, timed so
that reaching it needs 1,500-30,000 km/h; the leg into it and the leg back out are impossible.

- `clean_accuracy`: legs judged right (impossible exactly when the true positions need more
  than the policy's speed) among all legs of the GPS and cell itineraries. Goal 1.0.
- `geoip_false_alarms`: legs flagged on genuine trips whose fixes are partly GeoIP lookups
  25-500 km off that claim only 5-100 km. Goal 0. `geoip_detection` says what the policy's
  GeoIP floor costs: the impostor legs still caught when fixes are GeoIP.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from cloud_bridge.risk import travel as tr
from tools.eval_risk import signal_main

KMH = 1 / 3.6  # m/s per km/h
MIN_MS = 60_000


@dataclass(frozen=True)
class Point:
    t_ms: int
    lat: float
    lon: float
    genuine: bool  # on the user's true track (False: the impostor's event)


def destination(lat: float, lon: float, bearing: float, metres: float) -> tuple[float, float]:
    """The point `metres` from (lat, lon) along `bearing` (radians) on the sphere."""
    d = metres / tr.EARTH_RADIUS_M
    p1, l1 = math.radians(lat), math.radians(lon)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(bearing))
    l2 = l1 + math.atan2(
        math.sin(bearing) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2)
    )
    return math.degrees(p2), (math.degrees(l2) + 540.0) % 360.0 - 180.0


def _move(
    rng: np.random.Generator, start: Point, kmh: float, km: float, every_min: tuple[int, int]
) -> list[Point]:
    """Points along a straight move at `kmh`, one every `every_min` minutes, ending there."""
    bearing = rng.uniform(0, 2 * math.pi)
    total_ms = km * 1000 / (kmh * KMH) * 1000
    out, t = [], 0.0
    while t < total_ms:
        t = min(total_ms, t + rng.uniform(*every_min) * MIN_MS)
        lat, lon = destination(start.lat, start.lon, bearing, km * 1000 * t / total_ms)
        out.append(Point(start.t_ms + int(t), lat, lon, True))
    return out


def _dwell(rng: np.random.Generator, at: Point, minutes: float, every: float) -> list[Point]:
    n = max(1, int(minutes / every))
    return [Point(at.t_ms + int((i + 1) * every * MIN_MS), at.lat, at.lon, True) for i in range(n)]


def trip(rng: np.random.Generator, kind: str) -> list[Point]:
    start = Point(1_764_288_000_000, float(rng.uniform(20, 45)), float(rng.uniform(100, 120)), True)
    if kind == "walk":
        return [start, *_move(rng, start, rng.uniform(4, 6), rng.uniform(2, 8), (1, 10))]
    if kind == "car":
        return [start, *_move(rng, start, rng.uniform(60, 130), rng.uniform(50, 400), (5, 30))]
    drive = _move(rng, start, rng.uniform(40, 80), rng.uniform(15, 40), (5, 15))
    gate = _dwell(rng, drive[-1], rng.uniform(60, 150), 15)
    taxi_min = rng.uniform(20, 40)
    km = rng.uniform(500, 4000)
    hours = km / rng.uniform(800, 900) + taxi_min / 60
    lat, lon = destination(gate[-1].lat, gate[-1].lon, rng.uniform(0, 2 * math.pi), km * 1000)
    arrival = Point(gate[-1].t_ms + int(hours * 3_600_000), lat, lon, True)
    after = _dwell(rng, arrival, rng.uniform(10, 40), 10)
    return [start, *drive, *gate, arrival, *after]


def with_impostor(rng: np.random.Generator, points: list[Point]) -> list[Point]:
    """One impostor event between two consecutive genuine ones."""
    i = int(rng.integers(1, len(points)))
    prev = points[i - 1]
    km = rng.uniform(300, 8000)
    speed = rng.uniform(1500, 30000)
    gap_ms = km / speed * 3_600_000
    t = prev.t_ms + int(min(gap_ms, max(1, points[i].t_ms - prev.t_ms - 1)))
    lat, lon = destination(prev.lat, prev.lon, rng.uniform(0, 2 * math.pi), km * 1000)
    return [*points[:i], Point(t, lat, lon, False), *points[i:]]


def _true_speed_kmh(a: Point, b: Point) -> float:
    d = tr.distance_m(_fix(a, a.lat, a.lon, 0, "gps"), _fix(b, b.lat, b.lon, 0, "gps"))
    seconds = abs(b.t_ms - a.t_ms) / 1000
    return math.inf if seconds == 0 and d > 0 else d / max(seconds, 1e-9) * 3.6


def _fix(
    p: Point, lat: float, lon: float, accuracy_m: int, source: str, device: str = ""
) -> tr.Fix:
    return tr.Fix(p.t_ms, round(lat * tr.E7), round(lon * tr.E7), accuracy_m, source, device)


def observe(rng: np.random.Generator, p: Point, n: int, geoip: bool) -> tr.Fix:
    """A device's fix of a point: GPS (5-20 m) or cell (0.5-3 km), errors inside the radius;
    with `geoip`, a third of the fixes are GeoIP lookups 25-500 km off claiming 5-100 km."""
    device = "watch" if n % 2 else "phone"
    u = rng.random()
    if geoip and u < 1 / 3:
        off, claim, source = rng.uniform(25_000, 500_000), int(rng.uniform(5_000, 100_000)), "ip"
    elif u < 2 / 3:
        claim = int(rng.uniform(5, 20))
        off, source = rng.uniform(0, claim), "gps"
    else:
        claim = int(rng.uniform(500, 3000))
        off, source = rng.uniform(0, claim), "cell"
    lat, lon = destination(p.lat, p.lon, rng.uniform(0, 2 * math.pi), off)
    return _fix(p, lat, lon, claim, source, device)


def judge(points: list[Point], fixes: list[tr.Fix], policy: tr.Policy) -> tuple[int, int, int, int]:
    """(legs judged right, legs, impossible legs, impossible legs caught)."""
    state, right, legs, impossible, caught = tr.State(), 0, 0, 0, 0
    for i, f in enumerate(fixes):
        s = tr.step(state, f, policy)
        state = s.state
        if s.leg is None:
            continue
        truth = _true_speed_kmh(points[i - 1], points[i]) > policy.max_speed_kmh
        legs += 1
        right += truth == s.leg.impossible
        impossible += truth
        caught += truth and s.leg.impossible
    return right, legs, impossible, caught


def evaluate(seed: int, quick: bool) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    users = 300 if quick else 3000
    policy = tr.Policy()
    clean = [0, 0, 0, 0]
    geo = [0, 0, 0, 0]
    geo_false = geo_genuine_legs = 0
    kinds = ("walk", "car", "flight")
    for u in range(users):
        points = trip(rng, kinds[u % 3])
        if u % 2:
            points = with_impostor(rng, points)
        fixes = [observe(rng, p, n, geoip=False) for n, p in enumerate(points)]
        clean = [a + b for a, b in zip(clean, judge(points, fixes, policy), strict=True)]
        geo_fixes = [observe(rng, p, n, geoip=True) for n, p in enumerate(points)]
        r = judge(points, geo_fixes, policy)
        geo = [a + b for a, b in zip(geo, r, strict=True)]
        if not u % 2:  # genuine trips: every flag is a false alarm
            geo_false += r[1] - r[0]
            geo_genuine_legs += r[1]
    return {
        "clean_accuracy": round(clean[0] / clean[1], 5),
        "clean_legs": clean[1],
        "clean_impossible_legs": clean[2],
        "clean_impossible_caught": clean[3],
        "geoip_false_alarms": geo_false,
        "geoip_genuine_legs": geo_genuine_legs,
        "geoip_detection": round(geo[3] / geo[2], 4),
        "max_speed_kmh": policy.max_speed_kmh,
        "users": users,
        "goal": "clean_accuracy 1.0 on walk, car and flight itineraries; 0 GeoIP false alarms",
        "met": clean[0] == clean[1] and geo_false == 0,
    }


def main(argv: list[str] | None = None) -> int:
    return signal_main(
        "sig_travel", __doc__, evaluate, argv, quick_help="300 users instead of 3000"
    )


if __name__ == "__main__":
    sys.exit(main())

"""Impossible travel: the least speed that a user's two consecutive located events imply.

The events may come from different devices of the same user (a phone, then the watch): what is
judged is the person. Distance is the great-circle (haversine) distance on the mean Earth
radius, which is within 0.5 % of the ellipsoid and far inside any fix's error. It is made
accuracy-aware: each fix only says the device was within `accuracy_m` of the reported point,
so the least distance travelled is the distance less both radii (never below 0). A source's
claimed radius is raised to the policy's floor for that source, because GeoIP databases and
cell lookups often claim more than they deliver (city-level GeoIP is commonly 25-500 km off).

An event is flagged when that least distance over the time between the events exceeds the
policy's speed (products use 250-1,000 km/h; an airliner cruises at about 900). Pure: values
in, values out; the caller keeps the state per user.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

EARTH_RADIUS_M = 6_371_008.8  # IUGG mean radius
E7 = 10_000_000  # protocol.messages.Location: degrees x 10^7
SOURCES = ("gps", "cell", "ip")


class TravelError(ValueError):
    """A fix or a policy that cannot be used."""


@dataclass(frozen=True)
class Fix:
    """Where one of the user's devices was at `ts_ms` (from a report's or trigger's location)."""

    ts_ms: int
    lat_e7: int
    lon_e7: int
    accuracy_m: int
    source: str
    device: str = ""

    def __post_init__(self) -> None:
        if not -90 * E7 <= self.lat_e7 <= 90 * E7 or not -180 * E7 <= self.lon_e7 <= 180 * E7:
            raise TravelError(f"latitude {self.lat_e7} or longitude {self.lon_e7} out of range")
        if self.accuracy_m < 0:
            raise TravelError("accuracy_m is never negative")
        if self.source not in SOURCES:
            raise TravelError(f"source must be one of {', '.join(SOURCES)}, got {self.source!r}")


@dataclass(frozen=True)
class Policy:
    max_speed_kmh: float = 1000.0
    accuracy_floor_m: Mapping[str, int] = field(
        default_factory=lambda: {"gps": 10, "cell": 5_000, "ip": 500_000}
    )

    def __post_init__(self) -> None:
        if not 0 < self.max_speed_kmh < 100_000:
            raise TravelError(
                f"max_speed_kmh = {self.max_speed_kmh} must be above 0 and under 100000; "
                "for example: max_speed_kmh = 1000"
            )
        missing = set(SOURCES) - set(self.accuracy_floor_m)
        if missing or any(v < 0 for v in self.accuracy_floor_m.values()):
            raise TravelError(
                f"accuracy_floor_m needs a non-negative radius for each of {', '.join(SOURCES)}"
            )


def distance_m(a: Fix, b: Fix) -> float:
    """Great-circle distance between the two reported points (haversine)."""
    lat1, lat2 = math.radians(a.lat_e7 / E7), math.radians(b.lat_e7 / E7)
    dlat = lat2 - lat1
    dlon = math.radians((b.lon_e7 - a.lon_e7) / E7)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def radius_m(fix: Fix, policy: Policy) -> int:
    return max(fix.accuracy_m, policy.accuracy_floor_m[fix.source])


def min_distance_m(a: Fix, b: Fix, policy: Policy) -> float:
    """The least distance the person moved: the points' distance less both radii."""
    return max(0.0, distance_m(a, b) - radius_m(a, policy) - radius_m(b, policy))


@dataclass(frozen=True)
class Leg:
    """The judgement of one located event against the user's previous one."""

    min_distance_m: float
    seconds: float
    speed_kmh: float  # inf when the events are simultaneous but apart
    impossible: bool

    @property
    def reason(self) -> str:
        return "impossible_travel" if self.impossible else ""


def leg(prev: Fix, fix: Fix, policy: Policy) -> Leg:
    """Judge `fix` against the previous located event of the same user (any device)."""
    d = min_distance_m(prev, fix, policy)
    seconds = abs(fix.ts_ms - prev.ts_ms) / 1000.0
    if d == 0.0:
        speed = 0.0
    elif seconds == 0.0:
        speed = math.inf
    else:
        speed = d / seconds * 3.6
    return Leg(d, seconds, speed, speed > policy.max_speed_kmh)


@dataclass(frozen=True)
class State:
    """A user's last located event."""

    last: Fix | None = None


@dataclass(frozen=True)
class Step:
    state: State
    leg: Leg | None  # None for the user's first located event


def step(state: State, fix: Fix, policy: Policy) -> Step:
    """Judge a located event and remember the later of it and the user's last."""
    last = state.last
    if last is None:
        return Step(State(fix), None)
    return Step(State(fix if fix.ts_ms >= last.ts_ms else last), leg(last, fix, policy))

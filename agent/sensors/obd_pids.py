"""OBD-II service 01 decoding and the mileage ledger: pure functions of reply bytes and values.

PID formulas from SAE J1979 (service 01): a reply is `41 <pid> <data...>`; the support bitmaps
(PIDs 00, 20, 40, ... A0) are four bytes whose most significant bit stands for PID base+1.
The adapter in agent.sensors.obd2 does the serial I/O through python-OBD and hands the bytes here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

SERVICE_01_REPLY = 0x41
SUPPORT_PIDS = (0x00, 0x20, 0x40, 0x60, 0x80, 0xA0)


class Pid(enum.IntEnum):
    """The service 01 PIDs the EV mileage scene reads."""

    SPEED = 0x0D  # A km/h
    DISTANCE_SINCE_CLEAR = 0x31  # 256A + B km since the trouble codes were cleared
    BATTERY_REMAINING = 0x5B  # hybrid/EV battery pack remaining charge, A * 100 / 255 %
    ODOMETER = 0xA6  # (A B C D) / 10 km, total distance travelled


DATA_BYTES = {
    Pid.SPEED: 1,
    Pid.DISTANCE_SINCE_CLEAR: 2,
    Pid.BATTERY_REMAINING: 1,
    Pid.ODOMETER: 4,
}


def payload(pid: int, reply: bytes, length: int) -> bytes | None:
    """The data bytes of a service 01 reply to `pid`, or None when the reply is for another
    service or PID or too short (some ECUs answer with a manufacturer's mode instead)."""
    if len(reply) < 2 + length or reply[0] != SERVICE_01_REPLY or reply[1] != pid:
        return None
    return reply[2 : 2 + length]


def supported(base: int, data: bytes) -> frozenset[int]:
    """The PIDs a support bitmap reply (four data bytes after PID `base`) declares."""
    bits = int.from_bytes(data[:4], "big")
    return frozenset(base + 1 + i for i in range(32) if bits & (1 << (31 - i)))


def decode(pid: Pid, data: bytes) -> int:
    """A PID's value in the unit its telemetry key names (km/h, km, %, m)."""
    if pid is Pid.SPEED:
        return data[0]
    if pid is Pid.DISTANCE_SINCE_CLEAR:
        return data[0] * 256 + data[1]
    if pid is Pid.BATTERY_REMAINING:
        return round(data[0] * 100 / 255)
    return int.from_bytes(data[:4], "big") * 100  # 0.1 km per count -> metres


# ---- the mileage ledger ------------------------------------------------------------------------

DAY_MS = 86_400_000
WINDOW_DAYS = 30
STUCK_AFTER_M = 3_000
"""Distance the speed says was driven with no odometer movement before the odometer counts as
stuck: above the coarsest resolution (1 km for PID 31) plus the speed's rounding."""


@dataclass(frozen=True)
class DayMark:
    """The total distance at the first reading of a UTC day."""

    day: int
    total_m: int


@dataclass(frozen=True)
class Mileage:
    """What the device knows of the car's distance, persisted across restarts.

    `total_m` is the odometer (PID A6) when the car has one; otherwise a running total the
    device keeps from PID 31 (distance since codes cleared), which restarts at 0 whenever the
    codes are cleared. `marks` hold one total per day for the rolling 30-day distance."""

    total_m: int = 0
    since_clear_km: int | None = None
    marks: tuple[DayMark, ...] = ()
    unmoved_m: int = 0  # distance by speed since the total last moved (the stuck check)
    last_ts_ms: int | None = None

    def __post_init__(self) -> None:
        if self.total_m < 0 or self.unmoved_m < 0:
            raise ValueError("distances are never negative")


def _mark(state: Mileage, total_m: int, ts_ms: int) -> tuple[DayMark, ...]:
    day = ts_ms // DAY_MS
    marks = tuple(mk for mk in state.marks if mk.day > day - WINDOW_DAYS)
    if not marks or marks[-1].day < day:
        marks += (DayMark(day, total_m),)
    return marks


def with_odometer(state: Mileage, odometer_m: int, ts_ms: int) -> Mileage:
    """The ledger after an odometer reading (PID A6): the car's own total is the truth."""
    moved = odometer_m != state.total_m
    return replace(
        state,
        total_m=odometer_m,
        marks=_mark(state, odometer_m, ts_ms),
        unmoved_m=0 if moved else state.unmoved_m,
    )


def with_distance_since_clear(state: Mileage, km: int, ts_ms: int) -> Mileage:
    """The ledger after a PID 31 reading: the running total grows by what the counter grew.
    A counter under half its last value was cleared and restarted from 0; a smaller dip is a
    glitch (ECUs that round differently answer in turn) and is held at the last value."""
    last = state.since_clear_km
    if last is None or km >= last:
        grown, counter = (0 if last is None else km - last), km
    elif km < last // 2:
        grown, counter = km, km  # cleared: all of the new count was driven since
    else:
        grown, counter = 0, last
    total = state.total_m + grown * 1000
    return replace(
        state,
        total_m=total,
        since_clear_km=counter,
        marks=_mark(state, total, ts_ms),
        unmoved_m=0 if grown else state.unmoved_m,
    )


def with_speed(state: Mileage, speed_kmh: int, ts_ms: int) -> Mileage:
    """Integrate the speed since the last reading (gaps over a minute are not integrated: the
    adapter was away and the speed then is unknown)."""
    dt_ms = 0 if state.last_ts_ms is None else ts_ms - state.last_ts_ms
    if not 0 < dt_ms <= 60_000:
        dt_ms = 0
    return replace(state, unmoved_m=state.unmoved_m + speed_kmh * dt_ms // 3600, last_ts_ms=ts_ms)


def km_30d(state: Mileage, ts_ms: int) -> int:
    """Whole kilometres driven over the last 30 days (since the first reading, on a new rig)."""
    day = ts_ms // DAY_MS
    window = [mk for mk in state.marks if mk.day > day - WINDOW_DAYS]
    if not window:
        return 0
    return max(0, state.total_m - window[0].total_m) // 1000


def stuck(state: Mileage) -> bool:
    """The speed says the car drove on while the distance did not move."""
    return state.unmoved_m > STUCK_AFTER_M


def to_json(state: Mileage) -> dict[str, object]:
    return {
        "total_m": state.total_m,
        "since_clear_km": state.since_clear_km,
        "marks": [[mk.day, mk.total_m] for mk in state.marks],
    }


def from_json(doc: object) -> Mileage:
    """The persisted ledger; anything unreadable starts a new one (ValueError says why)."""
    if not isinstance(doc, dict):
        raise ValueError("the mileage file is not a JSON object")
    since = doc.get("since_clear_km")
    return Mileage(
        total_m=int(doc.get("total_m", 0)),
        since_clear_km=None if since is None else int(since),
        marks=tuple(DayMark(int(d), int(m)) for d, m in doc.get("marks", [])),
    )

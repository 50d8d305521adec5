"""EV mileage over OBD-II: the pure decoding and ledger, and the reader against the
ELM327-emulator package's car on a pseudo-terminal (tests/agent/elm_rig.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.sensors import obd_pids as pids
from agent.sensors.faults import Fault
from agent.sensors.obd2 import ObdReader
from agent.sensors.obd_pids import DayMark, Mileage, Pid
from agent.sensors.scenes import SceneReading
from tests.agent.elm_rig import Rig

DAY = pids.DAY_MS
T0 = 20_000 * DAY  # a UTC midnight


# ---- pure: decoding ------------------------------------------------------------------------


def test_supported__reads_the_bitmap_msb_first() -> None:
    # The emulator car's answer to 0100: 41 00 BE 3F A8 13 (SAE J1979 bit order).
    got = pids.supported(0x00, bytes.fromhex("BE3FA813"))
    assert {0x01, 0x03, 0x0D, 0x20} <= got and 0x02 not in got and 0x0A not in got
    assert pids.supported(0xA0, bytes.fromhex("04000000")) == {0xA6}


def test_payload__refuses_another_service_or_pid() -> None:
    assert pids.payload(0xA6, bytes.fromhex("41A60001E240"), 4) == bytes.fromhex("0001E240")
    assert pids.payload(0xA6, bytes.fromhex("61A60000EA5C"), 4) is None  # manufacturer mode
    assert pids.payload(0xA6, bytes.fromhex("41A500000000"), 4) is None
    assert pids.payload(0xA6, bytes.fromhex("41A600"), 4) is None


@pytest.mark.parametrize(
    ("pid", "data", "value"),
    [
        (Pid.SPEED, "37", 55),
        (Pid.DISTANCE_SINCE_CLEAR, "0132", 306),
        (Pid.BATTERY_REMAINING, "CC", 80),
        (Pid.ODOMETER, "0001E240", 12_345_600),  # 123456 tenths of a km = 12,345.6 km
    ],
)
def test_decode(pid: Pid, data: str, value: int) -> None:
    assert pids.decode(pid, bytes.fromhex(data)) == value


# ---- pure: the ledger ----------------------------------------------------------------------


def test_ledger__odometer_gives_the_30_day_distance() -> None:
    st = pids.with_odometer(Mileage(), 1_000_000, T0)
    assert pids.km_30d(st, T0) == 0
    st = pids.with_odometer(st, 1_250_000, T0 + 10 * DAY)
    assert pids.km_30d(st, T0 + 10 * DAY) == 250
    st = pids.with_odometer(st, 1_900_000, T0 + 35 * DAY)
    # The first day's mark fell out of the window: 30 days back is the day-10 mark.
    assert [mk.day for mk in st.marks] == [T0 // DAY + 10, T0 // DAY + 35]
    assert pids.km_30d(st, T0 + 35 * DAY) == 650


def test_ledger__distance_since_clear_keeps_a_running_total() -> None:
    st = Mileage(total_m=5_000_000)
    for km, total in [(50, 5_000_000), (49, 5_000_000), (51, 5_001_000), (3, 5_004_000)]:
        st = pids.with_distance_since_clear(st, km, T0)
        assert st.total_m == total, km  # 49: a glitch, held; 3: codes cleared, counted
    assert pids.from_json(json.loads(json.dumps(pids.to_json(st)))) == Mileage(
        total_m=5_004_000, since_clear_km=3, marks=(DayMark(T0 // DAY, 5_000_000),)
    )


def test_ledger__stuck_when_the_speed_drives_on_and_the_odometer_does_not() -> None:
    st = pids.with_odometer(Mileage(), 1_000_000, T0)
    for i in range(5):  # 60 km/h for 4 x 50 s = 3.3 km (the first read only starts the clock)
        st = pids.with_speed(st, 60, T0 + i * 50_000)
        st = pids.with_odometer(st, 1_000_000, T0 + i * 50_000)
    assert pids.stuck(st)
    st = pids.with_odometer(st, 1_000_100, T0 + 250_000)
    assert not pids.stuck(st)
    gap = pids.with_speed(Mileage(last_ts_ms=T0), 100, T0 + 3_600_000)  # adapter away an hour
    assert gap.unmoved_m == 0


# ---- the reader against the emulator --------------------------------------------------------


@pytest.fixture
def rig_factory(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(*args: str) -> Rig:
        rigs.append(Rig(tmp_path / "ttyOBD", *args).plug())
        return rigs[-1]

    yield make
    for rig in rigs:
        if rig.proc:
            rig.unplug()


def until(
    reader: ObdReader, ok: Callable[[SceneReading], bool], timeout_s: float = 20
) -> list[SceneReading]:
    seen = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen.append(reader.read(0))
        if ok(seen[-1]):
            return seen
        time.sleep(0.1)
    raise AssertionError(f"not reached; last readings: {seen[-3:]}")


def test_ev_car__odometer_and_charge(tmp_path: Path, rig_factory: Callable[..., Rig]) -> None:
    rig_factory("--ev", "--odometer-km", "12345.6")
    reader = ObdReader(tmp_path / "ttyOBD", 38400, tmp_path / "obd2.json", period_s=0.2)
    try:
        last = until(reader, lambda r: "odometer_m" in r.telemetry)[-1]
    finally:
        reader.close()
    assert last.telemetry["odometer_m"] == 12_345_600 and last.telemetry["soc_pct"] == 80
    assert all(last.telemetry[f"obd2.pid.{p:02x}"] == 1 for p in Pid)
    assert 0 <= last.telemetry["speed_kmh"] <= 255 and last.ok and last.faults == ()
    assert json.loads((tmp_path / "obd2.json").read_text())["total_m"] == 12_345_600


def test_car_without_odometer__running_total_from_distance_since_clear(
    tmp_path: Path, rig_factory: Callable[..., Rig]
) -> None:
    rig_factory()  # the scenario as shipped: A6 answered in mode 61, 5B without data
    state = tmp_path / "obd2.json"
    state.write_text(json.dumps({"total_m": 7_000_000, "since_clear_km": 40, "marks": []}))
    reader = ObdReader(tmp_path / "ttyOBD", 38400, state, period_s=0.1)
    try:
        last = until(reader, lambda r: r.telemetry.get("obd2.pid.a6") == 0)[-1]
    finally:
        reader.close()
    tel = last.telemetry
    assert tel["obd2.pid.a6"] == 0 and tel["obd2.pid.5b"] == 0 and "soc_pct" not in tel
    assert tel["obd2.pid.31"] == 1 and tel["obd2.pid.0d"] == 1
    # 40 km persisted, the car now counts 50 or 51: 10 or 11 km more on the persisted total.
    assert tel["odometer_m"] in (7_010_000, 7_011_000)
    assert json.loads(state.read_text())["total_m"] == tel["odometer_m"]


def test_unplug_and_replug__flagged_counted_survived(
    tmp_path: Path, rig_factory: Callable[..., Rig]
) -> None:
    reader = ObdReader(tmp_path / "ttyOBD", 38400, tmp_path / "obd2.json", period_s=0.1)
    try:
        missing = until(reader, lambda r: not r.ok)
        assert Fault.MISSING in sum((r.faults for r in missing), ())
        rig = rig_factory("--ev")
        until(reader, lambda r: r.ok and "odometer_m" in r.telemetry)
        rig.unplug()
        gone = until(reader, lambda r: not r.ok)
        assert sum((r.faults for r in gone), ()) == (Fault.UNPLUGGED,)
        assert gone[-1].telemetry == {}  # nothing stale is reported as live
        rig_factory("--ev", "--odometer-km", "12500")
        back = until(reader, lambda r: r.ok and r.telemetry.get("odometer_m") == 12_500_000)
        assert sum((r.faults for r in back), ()) == ()
    finally:
        reader.close()


def test_stuck_odometer_is_flagged(tmp_path: Path, rig_factory: Callable[..., Rig]) -> None:
    rig_factory("--ev")  # the car drives (PID 0D moves) but its odometer stands still
    clock = iter(range(T0, T0 + 10**12, 59_000))  # 59 s between reads: a mocked clock
    reader = ObdReader(
        tmp_path / "ttyOBD", 38400, tmp_path / "obd2.json", period_s=0.05,
        wall_ms=lambda: next(clock),
    )  # fmt: skip
    try:
        seen = until(reader, lambda r: not r.ok, 30)
    finally:
        reader.close()
    assert Fault.STUCK in sum((r.faults for r in seen), ())

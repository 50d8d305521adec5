"""Fridge stock from load cells: the pure core, and the reader against a sysfs-shaped HX711 tree
(the IIO ABI: in_voltageN_raw, in_voltageN_scale) with its faults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.config import Shelf
from agent.sensors import loadcell
from agent.sensors.faults import Fault
from agent.sensors.hx711 import CALIBRATION_FILE, LoadCellReader, load_calibration
from agent.sensors.loadcell import Calibration, ShelfState

MILK = Shelf(item="milk", unit_g=1000.0, full_count=4, channel=0)
SCALE = 0.000_5  # mV per count, as the driver reports at gain 128
CAL = Calibration(tare_mv=10.0, g_per_mv=100.0)  # 1 g = 0.01 mV = 20 counts


def raw_for(grams: float) -> int:
    return round((grams / CAL.g_per_mv + CAL.tare_mv) / SCALE)


def test_tare_and_span_from_samples() -> None:
    cal = loadcell.tare([10.1, 9.9, 10.0, 55.0])  # a median: one spike does not move it
    assert cal == Calibration(tare_mv=pytest.approx(10.05), g_per_mv=0.0) and not cal.complete
    cal = loadcell.span(cal, [20.05, 20.05, 20.06], known_g=1000)
    assert cal.g_per_mv == pytest.approx(1000 / 10.0) and cal.complete
    with pytest.raises(ValueError):
        loadcell.span(cal, [10.05], known_g=1000)


def test_span__a_reversed_cell_calibrates_and_weighs() -> None:
    """A+/A- swapped (or a cell in compression): weight lowers the millivolts."""
    cal = loadcell.span(loadcell.tare([10.0, 10.0, 10.0]), [0.0, 0.0, 0.0], known_g=500)
    assert cal.complete and cal.g_per_mv == pytest.approx(-50.0)
    assert loadcell.grams(cal, 6.0) == pytest.approx(200.0)  # 4 mV below tare: 200 g


def feed(state: ShelfState, grams: list[float], jitter: int = 3) -> list[loadcell.ShelfUpdate]:
    out = []
    for i, g in enumerate(grams):
        state, upd = loadcell.step(MILK, CAL, state, raw_for(g) + (i % 3) * jitter, SCALE)
        out.append(upd)
    feed.state = state  # type: ignore[attr-defined]
    return out


def test_step__smooths_holds_while_handled_and_counts_removals() -> None:
    ups = feed(ShelfState(), [3000.0] * 6 + [3900, 1200, 2500, 700] + [1000.0] * 6)
    assert ups[5].settled and ups[5].stock_pct == 75 and ups[5].items == 3
    handled = ups[6:10]
    assert not any(u.settled for u in handled)
    assert {u.stock_pct for u in handled} == {75}  # the estimate holds while the door is open
    assert sum(u.removed for u in ups) == 2 and ups[-1].items == 1 and ups[-1].stock_pct == 25
    assert not any(u.stuck for u in ups)


def test_step__a_frozen_raw_value_is_stuck() -> None:
    ups = feed(ShelfState(), [2000.0] * loadcell.STUCK_READS, jitter=0)
    assert not ups[-2].stuck and ups[-1].stuck


# ---- the reader on a sysfs tree -------------------------------------------------------------


def hx711_tree(dev: Path, raw: int) -> None:
    dev.mkdir(parents=True, exist_ok=True)
    (dev / "name").write_text("hx711\n")
    (dev / "in_voltage0_raw").write_text(f"{raw}\n")
    (dev / "in_voltage0_scale").write_text(f"{SCALE:.9f}\n")
    (dev / "in_voltage1_raw").write_text("0\n")
    (dev / "in_voltage1_scale").write_text("0.001953125\n")


def calibrated(data: Path) -> Path:
    data.mkdir(parents=True, exist_ok=True)
    (data / CALIBRATION_FILE).write_text(json.dumps({"milk": {"tare_mv": 10.0, "g_per_mv": 100}}))
    return data


def test_reader__stock_door_and_removals(tmp_path: Path) -> None:
    dev = tmp_path / "iio:device0"
    reader = LoadCellReader((MILK,), dev, calibrated(tmp_path / "data"))
    assert load_calibration(tmp_path / "data" / CALIBRATION_FILE)["milk"] == CAL
    seen = []
    for i, g in enumerate([4000.0] * 6 + [3100, 500, 3000] + [3000.0] * 6):
        hx711_tree(dev, raw_for(g) + i % 2)
        seen.append(reader.read(i * 1000))
    assert seen[5].telemetry["inv.milk"] == 100 and seen[5].telemetry["door.open"] == 0
    assert seen[7].telemetry["door.open"] == 1 and seen[7].telemetry["inv.milk"] == 100
    last = seen[-1].telemetry
    assert last["inv.milk"] == 75 and last["stock.milk"] == 3 and last["removed.milk"] == 1
    assert last["door.open"] == 0 and last["door.opened"] == 1 and last["g.milk"] == 3000
    assert all(r.ok and r.faults == () for r in seen)


def test_reader__faults_are_flagged_counted_once_and_never_raise(tmp_path: Path) -> None:
    dev = tmp_path / "iio:device0"
    reader = LoadCellReader((MILK,), dev, calibrated(tmp_path / "data"))
    first = reader.read(0)  # not wired yet
    assert first.faults == (Fault.MISSING,) and not first.ok
    assert reader.read(1).faults == ()  # the same episode is not counted twice
    hx711_tree(dev, raw_for(2000))
    assert reader.read(2).ok
    (dev / "in_voltage0_raw").write_text("garbage\n")  # a read error (the driver's -EIO alike)
    bad = reader.read(3)
    assert bad.faults == (Fault.READ,) and "inv.milk" not in bad.telemetry
    hx711_tree(dev, raw_for(2000))
    got = [reader.read(4 + i) for i in range(loadcell.STUCK_READS + 1)]
    assert sum((r.faults for r in got), ()) == (Fault.STUCK,) and not got[-1].ok
    for f in dev.iterdir():
        f.unlink()
    dev.rmdir()  # unplugged: the device node went away
    assert reader.read(99).faults == (Fault.UNPLUGGED,)

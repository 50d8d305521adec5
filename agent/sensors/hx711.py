"""Load cells through an HX711 and the Linux IIO driver (drivers/iio/adc/hx711.c,
`dtoverlay=hx711` on a Raspberry Pi): `in_voltage0_raw` (channel A), `in_voltage1_raw`
(channel B) and their `_scale` under /sys/bus/iio/devices/iio:deviceN.

The thin adapter of the loadcell scene: it reads the numbers, agent.sensors.loadcell decides.
Calibration (tare and span per shelf) lives on the device in `<data_dir>/loadcell.json`,
written by `edge-agent sources tare` and `edge-agent sources calibrate`.

Telemetry per shelf item: `inv.<item>` (percent of a full shelf: what the restock rule reads),
`stock.<item>` (whole items), `g.<item>` (grams, smoothed), `removed.<item>` (items taken,
counted since the agent started); and `door.open` (1 while any shelf's weight swings) with
`door.opened` (how many times it has).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from agent.config import Shelf
from agent.jsonfile import write_json_atomic
from agent.sensors import loadcell
from agent.sensors.faults import Fault
from agent.sensors.iio import SensorError
from agent.sensors.loadcell import Calibration, ShelfState
from agent.sensors.scenes import FaultEpisodes, SceneReading

log = logging.getLogger(__name__)

NAME = "loadcell"
CALIBRATION_FILE = "loadcell.json"


def shelf_device(shelf: Shelf, default: Path) -> Path:
    return shelf.device or default


def read_channel(device: Path, channel: int) -> tuple[int, float]:
    """One raw read and its scale (mV per count), as the IIO ABI names them."""
    try:
        raw = int((device / f"in_voltage{channel}_raw").read_text().strip())
        scale_file = device / f"in_voltage{channel}_scale"
        if not scale_file.exists():
            scale_file = device / "in_voltage_scale"
        scale = float(scale_file.read_text().strip()) if scale_file.exists() else 1.0
    except OSError as exc:
        raise SensorError(f"cannot read {device} channel {channel}: {exc.strerror}") from exc
    except ValueError as exc:
        raise SensorError(f"{device} channel {channel} gave a non-number: {exc}") from exc
    return raw, scale


def load_calibration(path: Path) -> dict[str, Calibration]:
    try:
        doc = json.loads(path.read_text())
        return {
            str(k): Calibration(float(v["tare_mv"]), float(v["g_per_mv"])) for k, v in doc.items()
        }
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SensorError(f"{path} is not a load-cell calibration: {exc}") from exc


def save_calibration(path: Path, cals: dict[str, Calibration]) -> None:
    doc = {k: {"tare_mv": c.tare_mv, "g_per_mv": c.g_per_mv} for k, c in sorted(cals.items())}
    write_json_atomic(path, doc)


class LoadCellReader:
    """The loadcell scene reader (see the module docstring)."""

    name = NAME

    def __init__(self, shelves: tuple[Shelf, ...], default_device: Path, data_dir: Path) -> None:
        self.shelves = shelves
        self.default_device = default_device
        self.calibration_file = data_dir / CALIBRATION_FILE
        self.cals = load_calibration(self.calibration_file)
        for shelf in shelves:
            if not self.cals.get(shelf.item, Calibration()).complete:
                log.warning(
                    "shelf %s is not calibrated: run `edge-agent sources tare` and `calibrate`",
                    shelf.item,
                )
        self.states = {shelf.item: ShelfState() for shelf in shelves}
        self.seen: set[Path] = set()
        self.episodes = FaultEpisodes()
        self.removed = {shelf.item: 0 for shelf in shelves}
        self.door_open = False
        self.door_opened = 0

    def read(self, now_ms: int) -> SceneReading:
        telemetry: dict[str, int] = {}
        faults: set[Fault] = set()
        swinging = False
        for shelf in self.shelves:
            device = shelf_device(shelf, self.default_device)
            if not device.is_dir():
                faults.add(Fault.UNPLUGGED if device in self.seen else Fault.MISSING)
                continue
            self.seen.add(device)
            try:
                raw, scale = read_channel(device, shelf.channel)
            except SensorError as exc:
                log.warning("%s", exc)
                faults.add(Fault.READ)
                continue
            cal = self.cals.get(shelf.item, Calibration())
            if not cal.complete:
                continue
            state, update = loadcell.step(shelf, cal, self.states[shelf.item], raw, scale)
            self.states[shelf.item] = state
            if update.stuck:
                faults.add(Fault.STUCK)
                continue  # a frozen reading says nothing about the stock
            self.removed[shelf.item] += update.removed
            swinging |= not update.settled
            telemetry[f"inv.{shelf.item}"] = update.stock_pct
            telemetry[f"stock.{shelf.item}"] = update.items
            telemetry[f"g.{shelf.item}"] = round(update.weight_g)
            telemetry[f"removed.{shelf.item}"] = self.removed[shelf.item]
        if swinging and not self.door_open:
            self.door_opened += 1
        self.door_open = swinging
        telemetry["door.open"] = int(swinging)
        telemetry["door.opened"] = self.door_opened
        began = self.episodes.update(frozenset(faults))
        return SceneReading(telemetry, began, not faults)

    def close(self) -> None:
        pass

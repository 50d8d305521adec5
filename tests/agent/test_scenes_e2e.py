"""Acceptance for the real scene sources: real agents and a real bridge process on a private
Mosquitto; the OBD-II car is ELM327-emulator on a pty, the fridge a sysfs-shaped HX711 tree."""

from __future__ import annotations

import json
import math
import random
import threading
import time
from pathlib import Path

import pytest

from agent.sensors.hx711 import CALIBRATION_FILE
from protocol import cose
from protocol import messages as m
from tests.agent.elm_rig import Rig
from tests.agent.harness import wait
from tests.bridge.harness import Bridge
from tests.harness.mosquitto import Mosquitto

pytestmark = [pytest.mark.broker, pytest.mark.slow]

SCALE = 0.0005  # mV per count
TARE_MV = 10.0
G_PER_MV = 100.0


def messages(bridge: Bridge, device: str) -> list[m.Message]:
    rows = bridge.query("SELECT envelope FROM events WHERE device_id = ? ORDER BY seq", (device,))
    return [m.decode(cose.peek_payload(bytes(r[0]))) for r in rows]


def reports(bridge: Bridge, device: str) -> list[m.Report]:
    return [x for x in messages(bridge, device) if isinstance(x, m.Report)]


def triggers(bridge: Bridge, device: str) -> list[m.Trigger]:
    return [x for x in messages(bridge, device) if isinstance(x, m.Trigger)]


def test_obd2_car_sends_mileage_and_fires_the_ev_tier(
    tmp_path: Path, private_broker: Mosquitto
) -> None:
    url = private_broker.url
    port = tmp_path / "ttyOBD"
    rig = Rig(port, "--ev", "--odometer-km", "20000", "--km-per-s", "150").plug()
    bridge = Bridge.create(tmp_path / "bridge", url)
    dev = bridge.device(tmp_path, "ev-1", "ev", url, "u-1", interval_s=0.3)
    cfg = dev.config.read_text().replace(
        "[sensors]\n", f'[sensors]\nscenes = ["obd2"]\nobd_port = "{port}"\n'
    )
    dev.config.write_text(cfg)
    bridge.open_pool("u-1")
    bridge.start()
    dev.start("--offline-ok")
    try:
        assert wait(lambda: len(triggers(bridge, "ev-1")) >= 1, 60), dev.log()[-3000:]
        rig.unplug()  # the adapter pulled out mid-session
        assert wait(
            lambda: any(r.telemetry.get("fault.obd2.unplugged") for r in reports(bridge, "ev-1")),
            30,
        ), dev.log()[-3000:]
        rig = Rig(port, "--ev", "--odometer-km", "40000").plug()  # the car drove on meanwhile
        n = len(reports(bridge, "ev-1"))
        assert wait(
            lambda: any(
                r.telemetry.get("obd2.ok") == 1 and "odometer_m" in r.telemetry
                for r in reports(bridge, "ev-1")[n:]
            ),
            40,
        ), dev.log()[-3000:]
        assert dev.proc is not None and dev.proc.poll() is None  # the agent kept running
    finally:
        if dev.proc:
            dev.stop()
        if rig.proc:
            rig.unplug()
        time.sleep(0.5)
        bridge.stop()
    got = reports(bridge, "ev-1")
    odometers = [r.telemetry["odometer_m"] for r in got if "odometer_m" in r.telemetry]
    assert odometers and odometers[0] >= 20_000_000 and odometers == sorted(odometers)
    first = triggers(bridge, "ev-1")[0]
    assert isinstance(first.body, m.EvTierBody) and first.body.tier >= 1
    assert first.body.km_30d >= 500  # the starter config's tiers: 500, 1500, 3000 km
    mileage = bridge.query(
        "SELECT count(*) FROM pool_commands WHERE user_id = 'u-1' AND kind = 'mileage'"
    )
    assert mileage[0][0] >= 1
    assert max(r.telemetry.get("fault.obd2.unplugged", 0) for r in got) == 1  # one episode


class Fridge:
    """An HX711 tree whose shelf weight a test sets; a thread rewrites the raw value with the
    noise a live cell has (a frozen value would rightly count as stuck)."""

    def __init__(self, dev: Path, grams: float) -> None:
        self.dev, self.grams = dev, grams
        self.garbage = False
        dev.mkdir(parents=True)
        (dev / "name").write_text("hx711\n")
        (dev / "in_voltage0_scale").write_text(f"{SCALE}\n")
        self.stop = threading.Event()
        self.rng = random.Random(7)
        self._write()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _write(self) -> None:
        raw = round((self.grams / G_PER_MV + TARE_MV) / SCALE) + self.rng.randint(-4, 4)
        value = "x\n" if self.garbage else f"{raw}\n"
        tmp = self.dev / ".raw"
        tmp.write_text(value)
        tmp.replace(self.dev / "in_voltage0_raw")

    def _run(self) -> None:
        while not self.stop.wait(0.2):
            self._write()


def test_fridge_load_cell_fires_restock_once_and_the_bridge_holds_once(
    tmp_path: Path, private_broker: Mosquitto
) -> None:
    url = private_broker.url
    fridge = Fridge(tmp_path / "iio:device0", grams=4000.0)
    bridge = Bridge.create(tmp_path / "bridge", url)
    dev = bridge.device(tmp_path, "fridge-1", "fridge", url, "u-1", interval_s=0.3)
    shelves = '[{item = "milk", unit_g = 1000, full_count = 4}]'
    cfg = dev.config.read_text().replace(
        "[sensors]\n",
        f'[sensors]\nscenes = ["loadcell"]\nloadcell_device = "{fridge.dev}"\n'
        f"shelves = {shelves}\n",
    )
    dev.config.write_text(cfg)
    (dev.dir / CALIBRATION_FILE).write_text(
        json.dumps({"milk": {"tare_mv": TARE_MV, "g_per_mv": G_PER_MV}})
    )
    bridge.open_pool("u-1")
    bridge.start()
    dev.start("--offline-ok")
    try:
        full = lambda: any(r.telemetry.get("inv.milk") == 100 for r in reports(bridge, "fridge-1"))  # noqa: E731
        assert wait(full, 60), dev.log()[-3000:]
        fridge.grams = 600.0  # three bottles and some taken: 15 %
        assert wait(lambda: len(triggers(bridge, "fridge-1")) == 1, 30), dev.log()[-3000:]
        fridge.grams = 400.0  # still low, and lower: within the 600 s cool-down, no second offer
        fridge.garbage = True  # and the driver returns nonsense for a while
        faulted = lambda: any(  # noqa: E731
            r.telemetry.get("fault.loadcell.read") for r in reports(bridge, "fridge-1")
        )
        assert wait(faulted, 30), dev.log()[-3000:]
        fridge.garbage = False
        settled = lambda: reports(bridge, "fridge-1")[-1].telemetry.get("inv.milk") == 10  # noqa: E731
        assert wait(settled, 30), dev.log()[-3000:]
        assert dev.proc is not None and dev.proc.poll() is None
    finally:
        if dev.proc:
            dev.stop()
        fridge.stop.set()
        time.sleep(0.5)
        bridge.stop()
    fired = triggers(bridge, "fridge-1")
    assert len(fired) == 1
    body = fired[0].body
    assert isinstance(body, m.RestockBody) and body.item == "milk" and body.level_pct == 15
    holds = bridge.query(
        "SELECT idem_key, result FROM pool_commands WHERE user_id = 'u-1' AND kind = 'hold'"
    )
    assert holds == [(f"fridge-1:{fired[0].seq}:hold", "ok")]
    last = reports(bridge, "fridge-1")[-1].telemetry
    assert last["fault.loadcell.read"] == 1 and last["loadcell.ok"] == 1
    assert last["removed.milk"] == 3 and last["stock.milk"] == 0 and last["door.opened"] == 2


class Wrist:
    """A sysfs IIO accelerometer + gyroscope worn while walking: a thread rewrites the raw
    values (2 steps a second, with noise); `unplug` removes the device, `plug` brings it back."""

    SCALE = 9.80665 / 16384  # m/s^2 per count

    def __init__(self, dev: Path) -> None:
        self.dev = dev
        self.stop = threading.Event()
        self.rng = random.Random(3)
        self.lock = threading.Lock()
        self.plug()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def plug(self) -> None:
        with self.lock:
            self.dev.mkdir()
            (self.dev / "in_accel_scale").write_text(f"{self.SCALE:.9f}\n")
            (self.dev / "in_anglvel_scale").write_text("0.000133090\n")
            self._write(0.0)

    def unplug(self) -> None:
        with self.lock:
            for f in self.dev.iterdir():
                f.unlink()
            self.dev.rmdir()

    def _write(self, t: float) -> None:
        g = 1.0 + 0.3 * math.sin(2 * math.pi * 2.0 * t)
        values = {
            "in_accel_x_raw": self.rng.randint(-30, 30),
            "in_accel_y_raw": self.rng.randint(-30, 30),
            "in_accel_z_raw": round(g * 16384) + self.rng.randint(-20, 20),
            "in_anglvel_x_raw": self.rng.randint(-5, 5),
            "in_anglvel_y_raw": self.rng.randint(-5, 5),
            "in_anglvel_z_raw": self.rng.randint(-5, 5),
        }
        for name, value in values.items():
            tmp = self.dev / f".{name}"
            tmp.write_text(f"{value}\n")
            tmp.replace(self.dev / name)

    def _run(self) -> None:
        start = time.monotonic()
        while not self.stop.wait(0.005):
            with self.lock:
                if self.dev.exists():
                    self._write(time.monotonic() - start)


def test_wearable_imu_steps_and_faults_of_the_imu_itself(
    tmp_path: Path, private_broker: Mosquitto
) -> None:
    url = private_broker.url
    wrist = Wrist(tmp_path / "iio:device0")
    bridge = Bridge.create(tmp_path / "bridge", url)
    dev = bridge.device(tmp_path, "band-1", "wearable", url, "u-1", interval_s=0.3)
    cfg = (
        dev.config.read_text()
        .replace('source = "sim"\n', "")
        .replace(
            "[sensors]\n",
            f'[sensors]\nsource = "iio"\niio_device = "{wrist.dev}"\nsample_hz = 1000\n'
            'window_samples = 64\nscenes = ["activity"]\n',
        )
    )
    dev.config.write_text(cfg)
    bridge.open_pool("u-1")
    bridge.start()
    dev.start("--offline-ok")

    def latest() -> dict[str, int]:
        got = reports(bridge, "band-1")
        return got[-1].telemetry if got else {}

    try:
        assert wait(lambda: latest().get("steps_today", 0) > 4, 60), dev.log()[-3000:]
        wrist.unplug()
        assert wait(
            lambda: (
                latest().get("fault.activity.unplugged") == 1
                and latest().get("fault.imu.read") == 1
                and latest().get("imu.ok") == 0
            ),
            30,
        ), (latest(), dev.log()[-3000:])
        wrist.plug()
        assert wait(lambda: latest().get("activity.ok") == 1 and latest().get("imu.ok") == 1, 30)
        assert dev.proc is not None and dev.proc.poll() is None  # the agent kept running
    finally:
        if dev.proc:
            dev.stop()
        wrist.stop.set()
        time.sleep(0.5)
        bridge.stop()
    last = reports(bridge, "band-1")[-1].telemetry
    assert last["fault.activity.unplugged"] == 1 and last["fault.imu.read"] == 1

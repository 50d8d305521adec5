"""The activity scene reader on an MPU-6050 (only the I2C bus simulated) and on a sysfs-shaped
IIO accelerometer tree, with its faults."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np

from agent.sensors.activity_reader import STATE_FILE, ActivityReader
from agent.sensors.faults import Fault
from agent.sensors.iio import G, IioSource
from agent.sensors.mpu6050 import ACCEL_XOUT_H, WHO_AM_I, Mpu6050Source
from agent.triggers import Event

HZ = 50
DAY0 = 20_000 * 86_400_000


def walking_g(i: int, steps_per_s: float = 2.0) -> float:
    return 1.0 + 0.3 * math.sin(2 * math.pi * steps_per_s * i / HZ) + 0.002 * ((i * 7) % 5)


class WalkingBus:
    """An MPU-6050 on I2C whose z axis follows a walk (then a fall, if asked); it can fail."""

    def __init__(self) -> None:
        self.i = 0
        self.fail = False
        self.frozen = False
        self.trace: list[float] = []

    def read_byte_data(self, addr: int, reg: int) -> int:
        return 0x68 if reg == WHO_AM_I else 0

    def write_byte_data(self, addr: int, reg: int, value: int) -> None:
        pass

    def read_i2c_block_data(self, addr: int, reg: int, length: int) -> list[int]:
        assert reg == ACCEL_XOUT_H and length in (6, 14)
        if self.fail:
            raise OSError(121, "Remote I/O error")  # what an unanswered I2C read gives
        g = self.trace[self.i] if self.i < len(self.trace) else walking_g(self.i)
        self.i += 0 if self.frozen else 1
        words = struct.pack(">3h", 0, 0, max(-32768, min(32767, round(g * 16384))))
        return list(words + bytes(length - 6))


def mpu_reader(tmp_path: Path, bus: WalkingBus) -> ActivityReader:
    imu = Mpu6050Source(bus, 0x68, 100, 64)
    return ActivityReader(
        imu,
        HZ,
        tmp_path,
        sleep=lambda s: None,
        wall_ms=lambda: DAY0 + 1000,
        retry_s=0,
        start=False,
    )


def test_mpu6050__counts_steps_and_keeps_them_over_a_restart(tmp_path: Path) -> None:
    bus = WalkingBus()
    reader = mpu_reader(tmp_path, bus)
    for _ in range(10):
        reader.sample_once()
    got = reader.read(0)
    assert got.ok and got.telemetry["day"] == 20_000
    assert abs(got.telemetry["steps_today"] - 20) <= 1  # 2 steps a second for 10 s
    assert (
        json.loads((tmp_path / STATE_FILE).read_text())["steps_today"]
        == got.telemetry["steps_today"]
    )
    again = mpu_reader(tmp_path, WalkingBus())
    assert again.read(0).telemetry == got.telemetry


def test_mpu6050__a_fall_is_an_event(tmp_path: Path) -> None:
    bus = WalkingBus()
    bus.trace = [1.0] * 20 + [0.05] * 15 + [3.8] + [1.0] * 64  # the impact saturates at 2 g
    reader = mpu_reader(tmp_path, bus)
    reader.sample_once()
    reader.sample_once()
    assert reader.read(0).events == (Event("illness", "fall"),)
    assert reader.read(1).events == ()  # reported once


def test_mpu6050__bus_errors_and_a_stuck_part_are_faults(tmp_path: Path) -> None:
    bus = WalkingBus()
    reader = mpu_reader(tmp_path, bus)
    reader.sample_once()
    bus.fail = True
    reader.sample_once()
    reader.sample_once()
    failed = reader.read(0)
    assert failed.faults == (Fault.READ,) and not failed.ok  # one episode, counted once
    bus.fail, bus.frozen = False, True
    reader.sample_once()
    assert reader.read(1).faults == (Fault.STUCK,)
    bus.frozen = False
    reader.sample_once()
    assert reader.read(2).ok


class IioAccel:
    """A sysfs IIO accelerometer tree; `tick` (the injected sleep) moves it to the next sample."""

    def __init__(self, dev: Path, steps: int | None = None) -> None:
        self.dev, self.i = dev, 0
        self.scale = G / 16384  # m/s^2 per count (IIO ABI)
        dev.mkdir()
        (dev / "in_accel_scale").write_text(f"{self.scale:.9f}\n")
        (dev / "in_anglvel_scale").write_text("0.000133090\n")
        for axis in "xyz":
            (dev / f"in_accel_{axis}_raw").write_text("0\n")
            (dev / f"in_anglvel_{axis}_raw").write_text("0\n")
        if steps is not None:
            (dev / "in_steps_input").write_text(f"{steps}\n")
        self.tick(0)

    def tick(self, _s: float) -> None:
        if self.dev.exists():
            raw = round(walking_g(self.i) * G / self.scale)
            (self.dev / "in_accel_z_raw").write_text(f"{raw}\n")
        self.i += 1


def test_iio__stream_steps_then_unplugged(tmp_path: Path) -> None:
    tree = IioAccel(tmp_path / "iio:device0")
    imu = IioSource(tree.dev, 100, 64)
    assert not imu.has_step_counter
    reader = ActivityReader(
        imu,
        HZ,
        tmp_path,
        device=tree.dev,
        sleep=tree.tick,
        wall_ms=lambda: DAY0,
        retry_s=0,
        start=False,
    )
    for _ in range(5):
        reader.sample_once()
    assert abs(reader.read(0).telemetry["steps_today"] - 10) <= 1
    for f in tree.dev.iterdir():
        f.unlink()
    tree.dev.rmdir()
    reader.sample_once()
    assert reader.read(1).faults == (Fault.UNPLUGGED,)


def test_iio__the_chips_step_counter_is_used_where_there_is_one(tmp_path: Path) -> None:
    tree = IioAccel(tmp_path / "iio:device0", steps=4_000)
    imu = IioSource(tree.dev, 100, 64)
    assert imu.has_step_counter
    reader = ActivityReader(
        imu, HZ, tmp_path, device=tree.dev, step_counter=imu.read_steps, sleep=tree.tick,
        wall_ms=lambda: DAY0, start=False,
    )  # fmt: skip
    reader.sample_once()
    (tree.dev / "in_steps_input").write_text("4123\n")
    reader.sample_once()
    assert reader.read(0).telemetry["steps_today"] == 123  # the chip's count, not the stream's
    assert np.isclose(imu.read_accel_g()[2], walking_g(tree.i - 1), atol=1e-3)


def test_reader__unwritable_state_file_is_a_fault_not_a_dead_thread(tmp_path: Path) -> None:
    """A full or read-only card: the reader keeps counting and says so, instead of its thread
    dying and its last values looking healthy for ever."""
    import math
    import time

    from agent.sensors.activity_reader import ActivityReader

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    n = [0]

    class Walking:
        def read_accel_g(self) -> tuple[float, float, float]:
            n[0] += 1
            return (0.0, 0.0, 1.0 + 0.5 * math.sin(n[0] / 3.0))

    reader = ActivityReader(Walking(), 50, blocker / "data", sleep=lambda s: None, start=True)
    try:
        deadline = time.monotonic() + 10
        while n[0] < 500 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reader._thread.is_alive()
        reading = reader.read(0)
        assert not reading.ok and Fault.READ in reading.faults
        assert reading.telemetry["steps_today"] > 0  # still counting
    finally:
        reader.close()

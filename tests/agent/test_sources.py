"""Sensor sources against simulated hardware buses (the only mocks allowed: no rig here)."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest

from agent import features
from agent.sensors.base import EventSpool
from agent.sensors.iio import IioSource, SensorError
from agent.sensors.mpu6050 import (
    ACCEL_CONFIG,
    ACCEL_XOUT_H,
    GYRO_CONFIG,
    PWR_MGMT_1,
    WHO_AM_I,
    Mpu6050Source,
)
from agent.sensors.replay import ReplaySource, write_capture
from agent.simulator.device import SimDevice
from agent.triggers import Event


class FakeClock:
    def __init__(self) -> None:
        self.us = 1_000_000

    def sleep(self, s: float) -> None:
        self.us += int(s * 1e6)

    def now_us(self) -> int:
        return self.us


class Mpu6050Bus:
    """An MPU-6050 register file: WHO_AM_I, the config registers, and a sample FIFO served
    from the burst read at ACCEL_XOUT_H (big-endian int16: ax ay az temp gx gy gz)."""

    def __init__(self, samples: np.ndarray, temp_raw: int, who: int = 0x68) -> None:
        self.regs = {WHO_AM_I: who, PWR_MGMT_1: 0x40}  # asleep at power-on
        self.samples = samples
        self.temp_raw = temp_raw
        self.i = 0

    def read_byte_data(self, addr: int, reg: int) -> int:
        assert addr == 0x68
        return self.regs.get(reg, 0)

    def write_byte_data(self, addr: int, reg: int, value: int) -> None:
        self.regs[reg] = value

    def read_i2c_block_data(self, addr: int, reg: int, length: int) -> list[int]:
        assert (reg, length) == (ACCEL_XOUT_H, 14) and self.regs[PWR_MGMT_1] == 0
        ax, ay, az, gx, gy, gz = (int(v) for v in self.samples[self.i % len(self.samples)])
        self.i += 1
        return list(struct.pack(">7h", ax, ay, az, self.temp_raw, gx, gy, gz))


def test_mpu6050__configures_the_part_and_reads_a_capture(tmp_path: Path) -> None:
    sim = SimDevice(3, "phone").capture(1)  # realistic raw samples to serve
    clock = FakeClock()
    bus = Mpu6050Bus(sim.imu_raw, temp_raw=-2000)
    src = Mpu6050Source(bus, 0x68, 100, 256, clock.sleep, clock.now_us)
    assert bus.regs[PWR_MGMT_1] == 0 and bus.regs[GYRO_CONFIG] == 0 and bus.regs[ACCEL_CONFIG] == 0
    cap = src.capture()
    assert np.array_equal(cap.imu_raw, sim.imu_raw[:256])
    assert cap.accel_lsb_per_g == 16384.0 and cap.gyro_lsb_per_dps == 131.0
    assert cap.temp_mc == round((-2000 / 340 + 36.53) * 1000)  # datasheet formula
    assert np.all(np.diff(cap.imu_ts_us) > 0)
    assert features.extract(cap).accel_norm_ug > 0


def test_mpu6050__refuses_another_part(tmp_path: Path) -> None:
    with pytest.raises(SensorError, match="not an MPU-6050"):
        Mpu6050Source(Mpu6050Bus(np.zeros((1, 6)), 0, who=0x71), 0x68, 100, 64)


def _iio_tree(root: Path, accel_scale: float, gyro_scale: float) -> None:
    root.mkdir(parents=True)
    (root / "in_accel_scale").write_text(f"{accel_scale}\n")
    (root / "in_anglvel_scale").write_text(f"{gyro_scale}\n")
    for i, axis in enumerate("xyz"):
        (root / f"in_accel_{axis}_raw").write_text(f"{[12, -40, 16384][i]}\n")
        (root / f"in_anglvel_{axis}_raw").write_text(f"{[3, -2, 1][i]}\n")
    (root / "in_temp_raw").write_text("1000\n")
    (root / "in_temp_offset").write_text("12420\n")
    (root / "in_temp_scale").write_text("2.941176\n")


def test_iio__reads_scales_and_samples(tmp_path: Path) -> None:
    dev = tmp_path / "iio:device0"
    _iio_tree(dev, accel_scale=9.80665 / 16384, gyro_scale=math.radians(1) / 131)
    clock = FakeClock()
    src = IioSource(dev, 100, 64, clock.sleep, clock.now_us)
    cap = src.capture()
    assert cap.imu_raw.shape == (64, 6) and tuple(cap.imu_raw[0]) == (12, -40, 16384, 3, -2, 1)
    assert cap.accel_lsb_per_g == pytest.approx(16384) and cap.gyro_lsb_per_dps == pytest.approx(
        131
    )
    assert cap.temp_mc == round((1000 + 12420) * 2.941176)  # IIO ABI: (raw + offset) * scale
    assert np.all(np.diff(cap.imu_ts_us) > 0)


@pytest.mark.parametrize("problem", ["missing", "no_scale", "bad_scale"])
def test_iio__clear_errors(tmp_path: Path, problem: str) -> None:
    dev = tmp_path / "iio:device0"
    if problem != "missing":
        _iio_tree(dev, 1e-3, 1e-3)
        if problem == "no_scale":
            (dev / "in_anglvel_scale").unlink()
        else:
            (dev / "in_accel_scale").write_text("0\n")
    with pytest.raises(SensorError):
        IioSource(dev, 100, 64)


def test_replay__plays_back_what_was_recorded(tmp_path: Path) -> None:
    sim = SimDevice(5, "fridge")
    path = tmp_path / "rec.jsonl"
    with open(path, "w") as fh:
        for i in range(3):
            write_capture(fh, sim.capture(i), {"inv.milk": 40 + i})
    src = ReplaySource(path)
    caps = [src.capture() for _ in range(4)]
    assert np.array_equal(caps[0].imu_raw, sim.capture(0).imu_raw)
    assert np.array_equal(caps[3].imu_raw, caps[0].imu_raw)  # loops
    assert src.poll(1).telemetry == {"inv.milk": 40}
    path.write_text(json.dumps({"imu_raw": "nope"}) + "\n")
    with pytest.raises(SensorError, match="not a capture recording"):
        ReplaySource(path)


def test_replay__a_recorded_fall_fires_once_per_play(tmp_path: Path) -> None:
    sim = SimDevice(5, "wearable")
    path = tmp_path / "rec.jsonl"
    fall = Event("illness", "fall")
    with open(path, "w") as fh:
        write_capture(fh, sim.capture(0), {"steps_today": 10}, [fall])
        write_capture(fh, sim.capture(1), {"steps_today": 12})
    src = ReplaySource(path)
    src.capture()
    assert src.poll(1).events == (fall,)
    assert src.poll(2).events == ()  # the same line again: the fall is not repeated
    src.capture()
    assert src.poll(3).events == ()
    src.capture()  # the recording loops: the fall plays again
    assert src.poll(4).events == (fall,)


def test_event_spool__whole_files_only_and_consumed_once(tmp_path: Path) -> None:
    spool = EventSpool(tmp_path / "events")
    spool.raise_emergency("disaster", 12_345)
    (tmp_path / "events" / ".half-written.json.tmp").write_text("{")
    (tmp_path / "events" / "junk.json").write_text("not json")
    ((path, event),) = spool.take()
    assert (event.emergency, event.source, event.amount_fen) == ("disaster", "explicit", 12_345)
    assert len(spool.take()) == 1  # still there until the caller has committed what it caused
    spool.remove([path.name])
    assert spool.take() == []
    with pytest.raises(ValueError):
        spool.raise_emergency("lottery")

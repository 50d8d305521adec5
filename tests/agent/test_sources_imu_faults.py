"""The MPU-6050 source when its I2C bus fails or the part freezes: the error is a SensorError
(never a bare OSError), a frozen window is `stuck`, and the composite source every hardware IMU
runs behind counts both as `fault.imu.*` telemetry and keeps the device running. The bus is the
one thing simulated (a hardware bus may be)."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from agent import config
from agent.sensors import factory, mpu6050
from agent.sensors.iio import SensorError, SensorStuck
from agent.sensors.mpu6050 import Mpu6050Source, stuck
from agent.sensors.scenes import SceneSource
from agent.simulator.device import SimDevice
from tests.agent.test_config import GOOD, write
from tests.agent.test_sources import FakeClock, Mpu6050Bus

WINDOW = 64


class FaultyBus(Mpu6050Bus):
    """Mpu6050Bus with a fault switch: "i2c_error" (every burst read NAKs, as smbus2 raises
    it), "stuck" (the part repeats its last sample) or "none"."""

    def __init__(self, samples: npt.NDArray[np.int16]) -> None:
        super().__init__(samples, temp_raw=-2000)
        self.fault = "none"
        self.frozen: list[int] | None = None

    def read_i2c_block_data(self, addr: int, reg: int, length: int) -> list[int]:
        if self.fault == "i2c_error":
            raise OSError(errno.EIO, "Remote I/O error")
        if self.fault == "stuck" and self.frozen is not None:
            return self.frozen
        block = super().read_i2c_block_data(addr, reg, length)
        self.frozen = block if self.fault == "stuck" else None
        return block


def source() -> tuple[FaultyBus, Mpu6050Source]:
    bus = FaultyBus(SimDevice(5, "phone").capture(1).imu_raw)
    clock = FakeClock()
    return bus, Mpu6050Source(bus, 0x68, 100, WINDOW, clock.sleep, clock.now_us)


def test_stuck__only_a_window_of_one_repeated_sample() -> None:
    row = np.array([[3, -2, 16384, 1, 0, -1]], dtype=np.int16)
    assert stuck(np.repeat(row, WINDOW, axis=0))
    moved = np.repeat(row, WINDOW, axis=0)
    moved[-1, 4] += 1  # one LSB on one gyro axis in the last sample: alive
    assert not stuck(moved)
    assert not stuck(row)  # one sample shows nothing


def test_mpu6050__a_bus_error_is_a_sensor_error_and_the_next_capture_reads_again() -> None:
    bus, src = source()
    bus.fault = "i2c_error"
    with pytest.raises(SensorError, match="I2C read of 0x68 failed") as info:
        src.capture()
    assert isinstance(info.value.__cause__, OSError)
    bus.fault = "none"
    assert not stuck(src.capture().imu_raw)


def test_mpu6050__a_frozen_part_is_stuck() -> None:
    bus, src = source()
    bus.fault = "stuck"
    with pytest.raises(SensorStuck, match=f"one raw sample {WINDOW} times"):
        src.capture()
    bus.fault = "none"
    src.capture()


def test_scene_source__counts_read_and_stuck_episodes_and_reuses_the_last_window() -> None:
    bus, imu = source()
    src = SceneSource(imu, ())
    good = src.capture()
    assert src.poll(0).telemetry == {"imu.ok": 1}
    bus.fault = "i2c_error"
    assert src.capture() is good and src.capture() is good  # stale, and flagged so
    assert src.poll(1).telemetry == {"fault.imu.read": 1, "imu.ok": 0}  # one episode
    bus.fault = "none"
    fresh = src.capture()
    assert fresh is not good and not np.array_equal(fresh.imu_raw, good.imu_raw)
    assert src.poll(2).telemetry == {"fault.imu.read": 1, "imu.ok": 1}
    bus.fault = "stuck"
    assert src.capture() is fresh and src.capture() is fresh
    assert src.poll(3).telemetry == {"fault.imu.read": 1, "fault.imu.stuck": 1, "imu.ok": 0}
    bus.fault = "i2c_error"  # a different fault: a new episode
    assert src.capture() is fresh
    bus.fault = "none"
    src.capture()
    assert src.poll(4).telemetry == {"fault.imu.read": 2, "fault.imu.stuck": 1, "imu.ok": 1}


def test_scene_source__a_fault_before_any_good_window_raises_and_is_counted() -> None:
    bus, imu = source()
    src = SceneSource(imu, ())
    bus.fault = "i2c_error"
    with pytest.raises(SensorError):
        src.capture()
    assert src.poll(0).telemetry == {"fault.imu.read": 1, "imu.ok": 0}


def test_factory__an_mpu6050_without_scenes_runs_behind_the_composite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = FaultyBus(SimDevice(5, "phone").capture(1).imu_raw)
    monkeypatch.setattr(mpu6050, "open_bus", lambda _number: bus)  # the hardware bus only
    imu = '[sensors]\nsource = "mpu6050"\n\n'
    text = GOOD.replace("[[triggers.rule]]", imu + "[[triggers.rule]]", 1)
    cfg = config.load(write(tmp_path, text))
    assert cfg.scenes == ()
    src = factory.source_for(cfg, boot=1)
    try:
        assert isinstance(src, SceneSource) and isinstance(src.imu, Mpu6050Source)
        good = src.capture()
        bus.fault = "i2c_error"
        assert src.capture() is good  # no exception escapes into the agent's loop
        assert src.poll(0).telemetry["fault.imu.read"] == 1
    finally:
        src.close()

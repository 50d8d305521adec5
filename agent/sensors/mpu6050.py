"""MPU-6050 on I2C (through smbus2): the accelerometer and gyroscope of the reference Pi rig.

Register map from the InvenSense MPU-6000/6050 register map, revision 4.2: wake with
PWR_MGMT_1 = 0 (PLL with the X gyro would be 1; the internal oscillator is fine at rest),
+-2 g (16384 LSB/g) and +-250 deg/s (131 LSB/(deg/s)), DLPF 44 Hz; then burst-read the 14 bytes
from ACCEL_XOUT_H: accel x y z, temperature, gyro x y z, big-endian int16.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from agent.features import Capture
from agent.sensors.iio import SensorError, SensorStuck
from agent.triggers import Reading

WHO_AM_I = 0x75
PWR_MGMT_1 = 0x6B
SMPLRT_DIV = 0x19
CONFIG = 0x1A
GYRO_CONFIG = 0x1B
ACCEL_CONFIG = 0x1C
ACCEL_XOUT_H = 0x3B
ACCEL_LSB_PER_G = 16384.0
GYRO_LSB_PER_DPS = 131.0


class Bus(Protocol):
    """The part of smbus2.SMBus this driver uses (a test passes a simulated bus)."""

    def read_byte_data(self, addr: int, reg: int) -> int: ...

    def write_byte_data(self, addr: int, reg: int, value: int) -> None: ...

    def read_i2c_block_data(self, addr: int, reg: int, length: int) -> list[int]: ...


def open_bus(number: int) -> Any:
    try:
        import smbus2
    except ImportError as exc:
        raise SensorError(
            "the mpu6050 source needs smbus2: pip install 'credit-pool-edge[pi]'"
        ) from exc
    try:
        return smbus2.SMBus(number)
    except OSError as exc:
        raise SensorError(
            f"cannot open /dev/i2c-{number}: {exc.strerror} (is I2C enabled?)"
        ) from exc


def stuck(raw: npt.NDArray[np.int16]) -> bool:
    """True when a window of raw samples (rows: accel x y z, gyro x y z) never changes: a live
    MPU-6050 at rest shows a few LSB of noise on every axis, so a frozen one is flagged."""
    return len(raw) >= 2 and bool(np.all(raw == raw[0]))


class Mpu6050Source:
    def __init__(
        self,
        bus: Bus,
        address: int,
        sample_hz: int,
        window: int,
        sleep: Callable[[float], None] = time.sleep,
        clock_us: Callable[[], int] = lambda: time.monotonic_ns() // 1000,
    ) -> None:
        self.bus, self.address = bus, address
        self.sample_hz, self.window = sample_hz, window
        self.sleep, self.clock_us = sleep, clock_us
        self.lock = threading.Lock()  # the activity thread and the capture share the bus
        try:
            who = bus.read_byte_data(address, WHO_AM_I)
        except OSError as exc:
            raise SensorError(f"no answer from I2C address {address:#04x}: {exc}") from exc
        if who & 0x7E != 0x68:
            raise SensorError(f"device at {address:#04x} says WHO_AM_I={who:#04x}, not an MPU-6050")
        bus.write_byte_data(address, PWR_MGMT_1, 0x00)
        bus.write_byte_data(address, CONFIG, 0x03)  # DLPF 44 Hz, gyro output at 1 kHz
        bus.write_byte_data(address, SMPLRT_DIV, max(0, min(255, 1000 // sample_hz - 1)))
        bus.write_byte_data(address, GYRO_CONFIG, 0x00)
        bus.write_byte_data(address, ACCEL_CONFIG, 0x00)

    def read_accel_g(self) -> tuple[float, float, float]:
        """One accelerometer sample in g (the activity scene's stream)."""
        with self.lock:
            block = bytes(self.bus.read_i2c_block_data(self.address, ACCEL_XOUT_H, 6))
        x, y, z = (float(v) / ACCEL_LSB_PER_G for v in np.frombuffer(block, dtype=">i2"))
        return x, y, z

    def poll(self, now_ms: int) -> Reading:
        return Reading(now_ms, {})

    def capture(self) -> Capture:
        raw = np.zeros((self.window, 6), dtype=np.int16)
        ts = np.zeros(self.window, dtype=np.int64)
        temps = np.zeros(self.window, dtype=np.int64)
        period = 1.0 / self.sample_hz
        for i in range(self.window):
            try:
                with self.lock:
                    block = bytes(self.bus.read_i2c_block_data(self.address, ACCEL_XOUT_H, 14))
            except OSError as exc:  # a NAK, a bus timeout: this window is lost, the next tries
                raise SensorError(f"I2C read of {self.address:#04x} failed: {exc}") from exc
            words = np.frombuffer(block, dtype=">i2")
            raw[i, :3], temps[i], raw[i, 3:] = words[:3], words[3], words[4:]
            ts[i] = self.clock_us()
            self.sleep(period)
        if stuck(raw):
            raise SensorStuck(
                f"MPU-6050 at {self.address:#04x} returned one raw sample {self.window} times"
            )
        ts = np.maximum.accumulate(ts + np.arange(self.window, dtype=np.int64))
        temp_mc = round((float(np.median(temps)) / 340.0 + 36.53) * 1000)
        return Capture(
            imu_raw=raw,
            imu_ts_us=ts,
            sample_rate_hz=float(self.sample_hz),
            accel_lsb_per_g=ACCEL_LSB_PER_G,
            gyro_lsb_per_dps=GYRO_LSB_PER_DPS,
            temp_mc=temp_mc,
            tap_intervals_ms=np.zeros(0, dtype=np.int32),
            tap_holds_ms=np.zeros(0, dtype=np.int32),
        )

    def close(self) -> None:
        close = getattr(self.bus, "close", None)
        if close is not None:
            close()

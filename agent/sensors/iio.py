"""Linux IIO sysfs source: an accelerometer and gyroscope exposed under /sys/bus/iio/devices.

Reads `in_accel_{x,y,z}_raw`, `in_anglvel_{x,y,z}_raw` and their `_scale` (m/s^2 and rad/s per
LSB, IIO ABI), and `in_temp_raw`/`_offset`/`_scale` when present, by polling at the configured
rate. The device must be at rest during a capture (the fingerprint is its calibration).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from agent.activity import EARTH_G as G  # m/s^2 per g: IIO reports m/s^2
from agent.errors import AgentError
from agent.features import Capture
from agent.triggers import Reading

AXES = ("x", "y", "z")


class SensorError(AgentError):
    """A sensor is missing, unreadable or reports nonsense."""


class SensorStuck(SensorError):
    """A sensor answers, but every sample of a window is the same raw value: a part whose
    output froze (a live MEMS part at rest always shows noise in its low bits)."""


class IioSource:
    def __init__(
        self,
        device: Path,
        sample_hz: int,
        window: int,
        sleep: Callable[[float], None] = time.sleep,
        clock_us: Callable[[], int] = lambda: time.monotonic_ns() // 1000,
    ) -> None:
        self.device = device
        self.sample_hz = sample_hz
        self.window = window
        self.sleep = sleep
        self.clock_us = clock_us
        if not device.is_dir():
            raise SensorError(f"IIO device {device} does not exist (is the driver loaded?)")
        self.accel_scale = self._float("in_accel_scale", "in_accel_x_scale")
        self.gyro_scale = self._float("in_anglvel_scale", "in_anglvel_x_scale")

    def _read(self, name: str) -> str:
        try:
            return (self.device / name).read_text().strip()
        except OSError as exc:
            raise SensorError(f"cannot read {self.device / name}: {exc.strerror}") from exc

    def _float(self, *names: str) -> float:
        for name in names:
            if (self.device / name).exists():
                value = float(self._read(name))
                if value <= 0 or not math.isfinite(value):
                    raise SensorError(f"{self.device / name} is {value}, not a positive scale")
                return value
        raise SensorError(f"{self.device} has none of {', '.join(names)}")

    def _temp_mc(self) -> int:
        if not (self.device / "in_temp_raw").exists():
            return 25_000
        raw = float(self._read("in_temp_raw"))
        offset = (
            float(self._read("in_temp_offset"))
            if (self.device / "in_temp_offset").exists()
            else 0.0
        )
        scale = (
            float(self._read("in_temp_scale")) if (self.device / "in_temp_scale").exists() else 1.0
        )
        return round((raw + offset) * scale)  # IIO: milli degrees Celsius

    def read_accel_g(self) -> tuple[float, float, float]:
        """One accelerometer sample in g (the activity scene's stream)."""
        x, y, z = (int(self._read(f"in_accel_{a}_raw")) * self.accel_scale / G for a in AXES)
        return x, y, z

    @property
    def has_step_counter(self) -> bool:
        return (self.device / "in_steps_input").exists()

    def read_steps(self) -> int:
        """The chip's own cumulative step count (IIO `in_steps_input`)."""
        try:
            return int(self._read("in_steps_input"))
        except ValueError as exc:
            raise SensorError(f"{self.device / 'in_steps_input'} is not a count") from exc

    def poll(self, now_ms: int) -> Reading:
        return Reading(now_ms, {})

    def capture(self) -> Capture:
        names = [f"in_accel_{a}_raw" for a in AXES] + [f"in_anglvel_{a}_raw" for a in AXES]
        raw = np.zeros((self.window, 6), dtype=np.int16)
        ts = np.zeros(self.window, dtype=np.int64)
        period = 1.0 / self.sample_hz
        for i in range(self.window):
            for j, name in enumerate(names):
                raw[i, j] = int(self._read(name))
            ts[i] = self.clock_us()
            self.sleep(period)
        # Strictly increasing timestamps even if the clock is coarse.
        ts = np.maximum.accumulate(ts + np.arange(self.window, dtype=np.int64))
        return Capture(
            imu_raw=raw,
            imu_ts_us=ts,
            sample_rate_hz=float(self.sample_hz),
            accel_lsb_per_g=G / self.accel_scale,
            gyro_lsb_per_dps=math.radians(1.0) / self.gyro_scale,
            temp_mc=self._temp_mc(),
            tap_intervals_ms=np.zeros(0, dtype=np.int32),
            tap_holds_ms=np.zeros(0, dtype=np.int32),
        )

    def close(self) -> None:
        pass

"""The value types of the device fingerprint: a sensor capture and the fingerprint measured from
it (agent.features computes one from the other). Validated on construction; the fingerprint's
wire form is a report's `fingerprint` and an enrollment's `baseline` (protocol.messages)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt

from agent.errors import AgentError

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class FeatureError(AgentError):
    """A capture, fingerprint or normalisation that cannot be used, with the reason."""


@dataclass(frozen=True, eq=False)
class Capture:
    """One session's raw sensor data, as any sensor source hands it to `extract`.

    - `imu_raw`: int16, shape (n, 6): accel x, y, z then gyro x, y, z in LSB, device at rest.
    - `imu_ts_us`: int64, shape (n,): arrival time of each sample on the host's monotonic clock.
    - `sample_rate_hz`: the nominal output data rate the IMU was configured for.
    - `accel_lsb_per_g`, `gyro_lsb_per_dps`: the configured full-scale sensitivities.
    - `temp_mc`: the session temperature reading, milli-degrees Celsius.
    - `tap_intervals_ms`, `tap_holds_ms`: int32; touch-down to touch-down intervals and touch
      durations of the session's taps; both empty on devices without touch.
    """

    imu_raw: npt.NDArray[np.int16]
    imu_ts_us: npt.NDArray[np.int64]
    sample_rate_hz: float
    accel_lsb_per_g: float
    gyro_lsb_per_dps: float
    temp_mc: int
    tap_intervals_ms: npt.NDArray[np.int32]
    tap_holds_ms: npt.NDArray[np.int32]

    def __post_init__(self) -> None:
        raw = np.asarray(self.imu_raw)
        ts = np.asarray(self.imu_ts_us)
        if raw.dtype != np.int16 or raw.ndim != 2 or raw.shape[1] != 6 or raw.shape[0] < 64:
            raise FeatureError(f"imu_raw must be int16 of shape (n >= 64, 6), got {raw.dtype}")
        if ts.dtype != np.int64 or ts.shape != (raw.shape[0],):
            raise FeatureError("imu_ts_us must be int64 with one timestamp per IMU sample")
        if np.any(np.diff(ts) <= 0):
            raise FeatureError("imu_ts_us must be strictly increasing")
        for name in ("sample_rate_hz", "accel_lsb_per_g", "gyro_lsb_per_dps"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise FeatureError(f"{name} must be a positive number, got {value!r}")
        if type(self.temp_mc) is not int or not -60_000 <= self.temp_mc <= 150_000:
            raise FeatureError(f"temp_mc must be an int in -60000..150000, got {self.temp_mc!r}")
        iti = np.asarray(self.tap_intervals_ms)
        hold = np.asarray(self.tap_holds_ms)
        if iti.dtype != np.int32 or hold.dtype != np.int32 or iti.ndim != 1 or hold.ndim != 1:
            raise FeatureError("tap_intervals_ms and tap_holds_ms must be 1-d int32 arrays")
        if len(hold) and len(iti) != len(hold) - 1:
            raise FeatureError("n taps give n durations and n - 1 intervals")
        if np.any(iti <= 0) or np.any(hold <= 0):
            raise FeatureError("tap intervals and durations must be positive")
        for name, arr in (
            ("imu_raw", raw),
            ("imu_ts_us", ts),
            ("tap_intervals_ms", iti),
            ("tap_holds_ms", hold),
        ):
            arr = arr.copy()
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)


@dataclass(frozen=True)
class Fingerprint:
    """Calibration, clock and behaviour measures of one session, or of an enrolled baseline.

    Integers in fixed point; the unit is in each name (ug: micro-g, udps: micro-degree/s, cdb:
    centi-decibel, milli: thousandths, pm: per-mille, ppb: parts per billion, mc: milli-degree
    Celsius). The `tc_*` coefficients are fitted by `enroll` and are 0 in a single session.
    """

    accel_norm_ug: int  # 0: norm of the mean acceleration at rest (gravity seen through gain, bias)
    gyro_bias_x_udps: int  # 1..3: mean angular rate at rest (zero-rate offset)
    gyro_bias_y_udps: int
    gyro_bias_z_udps: int
    accel_noise_ug: int  # 4: rms of the accelerometer noise, mean over axes
    gyro_noise_udps: int  # 5: rms of the gyro noise, mean over axes
    accel_band_mid_cdb: int  # 6: mid-band noise power over low-band power
    accel_band_high_cdb: int  # 7: high-band (near Nyquist) power over low-band power
    gyro_band_mid_cdb: int  # 8
    gyro_band_high_cdb: int  # 9
    quant_gap_milli: int  # 10: median step between adjacent distinct sample values, LSB
    repeat_pm: int  # 11: samples that repeat an earlier 6-axis sample of the window exactly
    rate_ppb: int  # 12: IMU output rate against the host clock, offset from nominal
    jitter_ns: int  # 13: rms residual of the arrival times around their linear fit
    temp_mc: int  # 14: session temperature reading (baseline: mean of enrollment)
    tc_accel_norm_ug_per_c: int  # 15: d accel_norm / d temperature (baseline only)
    tc_gyro_x_udps_per_c: int  # 16..18: d gyro bias / d temperature (baseline only)
    tc_gyro_y_udps_per_c: int
    tc_gyro_z_udps_per_c: int
    tc_rate_ppb_per_c: int  # 19: d rate_ppb / d temperature (baseline only)
    iti_median_us: int  # 20: median touch-down interval
    iti_logsd_milli: int  # 21: robust sd of ln(interval)
    hold_median_us: int  # 22: median touch duration
    hold_logsd_milli: int  # 23: robust sd of ln(duration)

    def __post_init__(self) -> None:
        for name in FINGERPRINT_FIELDS:  # not dataclasses.fields(): the bridge makes many
            value = getattr(self, name)
            if type(value) is not int or not INT64_MIN <= value <= INT64_MAX:
                raise FeatureError(f"Fingerprint.{name} must be a signed 64-bit int")
        if self.iti_median_us < 0 or self.hold_median_us < 0:
            raise FeatureError("Fingerprint tap medians must not be negative")
        if self.accel_noise_ug < 0 or self.gyro_noise_udps < 0 or self.jitter_ns < 0:
            raise FeatureError("Fingerprint noise and jitter measures must not be negative")

    def to_wire(self) -> dict[int, int]:
        """Keys 0..23 in field order, values the fixed-point integers (protocol IntMap)."""
        return {i: getattr(self, name) for i, name in enumerate(FINGERPRINT_FIELDS)}

    @classmethod
    def from_wire(cls, data: Mapping[int, int]) -> Fingerprint:
        """Inverse of to_wire; FeatureError names a missing or unknown key."""
        keys = set(data)
        if keys != _WIRE_KEYS:
            missing = sorted(_WIRE_KEYS - keys)
            extra = sorted(keys - _WIRE_KEYS, key=repr)
            raise FeatureError(f"fingerprint keys: missing {missing}, unknown {extra}")
        return cls(*[data[i] for i in range(len(FINGERPRINT_FIELDS))])  # in field order

    @property
    def has_touch(self) -> bool:
        """Whether the behaviour measures were estimated (MIN_TAPS taps or more)."""
        return self.iti_median_us > 0


FINGERPRINT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Fingerprint))
_WIRE_KEYS = frozenset(range(len(FINGERPRINT_FIELDS)))

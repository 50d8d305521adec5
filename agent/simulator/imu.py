"""The IMU of a simulated device: per-part calibration errors and what they make it read at rest.

Model (per axis, body frame, z up in the rest pose):

    accel = (1 + s + s_tc (T - 25)) (I + M) f + b + b_tc (T - 25) + b_rep + noise     [g]
    gyro  = w + w_tc (T - 25) + w_rep + earth_rate + noise                            [dps]

f is the specific force at rest (+1 g up, rotated by the session's tilt), s the sensitivity
error, M the small cross-axis misalignment, b and w the zero-g and zero-rate offsets, *_tc their
temperature coefficients, *_rep the turn-on repeatability (fresh each session). The noise is
white at the part's noise density plus flicker (1/f) noise below a per-part corner frequency,
shaped by the IMU's digital low-pass filter (second-order magnitude response), then quantised to
int16 by the ADC. Ambient vibration (a fridge compressor, wind on a parked car) adds a tone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from agent.simulator.profiles import KindProfile

EARTH_RATE_DPS = 360.0 / 86164.0  # one turn per sidereal day
T_REF_C = 25.0

Array = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class ImuPart:
    """The calibration errors of one physical IMU part, drawn once per device."""

    accel_bias_g: Array  # (3,)
    accel_scale: Array  # (3,) sensitivity error s
    accel_misalign: Array  # (3, 3) M, zero diagonal
    accel_tc_g_per_c: Array  # (3,)
    accel_scale_tc_per_c: Array  # (3,)
    accel_nd_g_rthz: Array  # (3,)
    accel_flicker_hz: float  # 1/f corner
    gyro_bias_dps: Array  # (3,)
    gyro_tc_dps_per_c: Array  # (3,)
    gyro_nd_dps_rthz: Array  # (3,)
    gyro_flicker_hz: float
    dlpf_cutoff_hz: float  # this part's filter corner (the nominal setting, +-tolerance)
    latitude_deg: float  # where the device lives: sets the earth-rate projection

    @classmethod
    def draw(cls, rng: np.random.Generator, p: KindProfile) -> ImuPart:
        """A part from the kind's population."""
        misalign = rng.normal(0.0, 0.005, (3, 3))
        np.fill_diagonal(misalign, 0.0)
        return cls(
            accel_bias_g=rng.normal(0.0, p.accel_bias_sd_mg * 1e-3, 3),
            accel_scale=rng.normal(0.0, p.accel_scale_sd, 3),
            accel_misalign=misalign,
            accel_tc_g_per_c=rng.normal(0.0, p.accel_tc_sd_mg_per_c * 1e-3, 3),
            accel_scale_tc_per_c=rng.normal(0.0, 1e-4, 3),
            accel_nd_g_rthz=p.accel_nd_ug_rthz
            * 1e-6
            * rng.lognormal(0.0, 0.15)
            * (rng.lognormal(0.0, 0.05, 3)),
            accel_flicker_hz=float(rng.uniform(0.2, 2.0)),
            gyro_bias_dps=rng.normal(0.0, p.gyro_bias_sd_dps, 3),
            gyro_tc_dps_per_c=rng.normal(0.0, p.gyro_tc_sd_dps_per_c, 3),
            gyro_nd_dps_rthz=p.gyro_nd_mdps_rthz
            * 1e-3
            * rng.lognormal(0.0, 0.15)
            * (rng.lognormal(0.0, 0.05, 3)),
            gyro_flicker_hz=float(rng.uniform(0.1, 1.5)),
            dlpf_cutoff_hz=p.dlpf_cutoff_hz * float(rng.normal(1.0, 0.04)),
            latitude_deg=float(rng.uniform(18.0, 53.0)),
        )


@dataclass(frozen=True)
class RestPose:
    """How the device lies in one session: tilt from level and heading."""

    roll_rad: float
    pitch_rad: float
    heading_rad: float

    @classmethod
    def draw(cls, rng: np.random.Generator, tilt_max_deg: float) -> RestPose:
        tilt = math.radians(tilt_max_deg)
        return cls(
            roll_rad=float(rng.uniform(-tilt, tilt)),
            pitch_rad=float(rng.uniform(-tilt, tilt)),
            heading_rad=float(rng.uniform(0.0, 2 * math.pi)),
        )

    def world_to_body(self) -> Array:
        """Rotation taking a vector in the local level frame (z up) into the body frame."""
        cr, sr = math.cos(self.roll_rad), math.sin(self.roll_rad)
        cp, sp = math.cos(self.pitch_rad), math.sin(self.pitch_rad)
        ch, sh = math.cos(self.heading_rad), math.sin(self.heading_rad)
        rx = np.array([[1, 0, 0], [0, cr, sr], [0, -sr, cr]])
        ry = np.array([[cp, 0, -sp], [0, 1, 0], [sp, 0, cp]])
        rz = np.array([[ch, sh, 0], [-sh, ch, 0], [0, 0, 1]])
        out: Array = rx @ ry @ rz
        return out


@dataclass(frozen=True)
class Vibration:
    """An ambient tone in the window: frequency as a fraction of the sample rate (aliased)."""

    freq_frac: float
    accel_amp_g: float
    gyro_amp_dps: float
    phase_rad: float

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Vibration:
        return cls(
            freq_frac=float(rng.uniform(0.01, 0.49)),
            accel_amp_g=float(rng.uniform(0.2e-3, 2e-3)),
            gyro_amp_dps=float(rng.uniform(0.002, 0.02)),
            phase_rad=float(rng.uniform(0, 2 * math.pi)),
        )


def shaped_noise(
    rng: np.random.Generator,
    n: int,
    sample_rate_hz: float,
    density_rthz: Array,
    flicker_hz: float,
    cutoff_hz: float | None,
) -> Array:
    """(n, 3) noise: white at `density_rthz` plus 1/f below `flicker_hz`, low-passed at cutoff.

    Shaped in the frequency domain; a white sequence of sd sigma has a one-sided density of
    sigma / sqrt(fs / 2), hence the scale.
    """
    white = rng.standard_normal((n, len(density_rthz)))
    freq = np.fft.rfftfreq(n, 1.0 / sample_rate_hz)
    freq[0] = freq[1]
    shape = np.sqrt(1.0 + flicker_hz / freq)
    if cutoff_hz is not None:
        shape = shape / np.sqrt(1.0 + (freq / cutoff_hz) ** 4)
    shaped = np.fft.irfft(np.fft.rfft(white, axis=0) * shape[:, None], n, axis=0)
    out: Array = shaped * (density_rthz * math.sqrt(sample_rate_hz / 2.0))
    return out


def quantise(values: Array, lsb_per_unit: float, step_lsb: float = 1.0) -> npt.NDArray[np.int16]:
    """The ADC: round to the nearest code (or, for a synthetic source, to `step_lsb` codes)."""
    codes = values * lsb_per_unit
    if step_lsb != 1.0:
        codes = np.round(codes / step_lsb) * step_lsb
    out: npt.NDArray[np.int16] = np.clip(np.round(codes), -32768, 32767).astype(np.int16)
    return out


def render(
    part: ImuPart,
    p: KindProfile,
    temp_c: float,
    pose: RestPose,
    vibration: Vibration | None,
    rng: np.random.Generator,
) -> npt.NDArray[np.int16]:
    """The raw int16 (n, 6) window this part reads at rest in one session."""
    n, fs = p.n_samples, p.sample_rate_hz
    dt = temp_c - T_REF_C
    r = pose.world_to_body()
    force = r @ np.array([0.0, 0.0, 1.0])
    lat = math.radians(part.latitude_deg)
    earth = r @ (EARTH_RATE_DPS * np.array([math.cos(lat), 0.0, -math.sin(lat)]))

    gain = 1.0 + part.accel_scale + part.accel_scale_tc_per_c * dt
    accel_mean = gain * ((np.eye(3) + part.accel_misalign) @ force)
    accel_mean = accel_mean + part.accel_bias_g + part.accel_tc_g_per_c * dt
    accel_mean = accel_mean + rng.normal(0.0, p.accel_repeat_sd_mg * 1e-3, 3)
    gyro_mean = part.gyro_bias_dps + part.gyro_tc_dps_per_c * dt + earth
    gyro_mean = gyro_mean + rng.normal(0.0, p.gyro_repeat_sd_dps, 3)

    accel = accel_mean + shaped_noise(
        rng, n, fs, part.accel_nd_g_rthz, part.accel_flicker_hz, part.dlpf_cutoff_hz
    )
    gyro = gyro_mean + shaped_noise(
        rng, n, fs, part.gyro_nd_dps_rthz, part.gyro_flicker_hz, part.dlpf_cutoff_hz
    )
    if vibration is not None:
        k = np.arange(n)
        tone = np.sin(2 * math.pi * vibration.freq_frac * k + vibration.phase_rad)[:, None]
        direction = rng.normal(0.0, 1.0, (2, 3))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        accel = accel + vibration.accel_amp_g * tone * direction[0]
        gyro = gyro + vibration.gyro_amp_dps * tone * direction[1]
    return np.concatenate(
        [quantise(accel, p.accel_lsb_per_g), quantise(gyro, p.gyro_lsb_per_dps)], axis=1
    )

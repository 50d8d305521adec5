"""Per-kind hardware and usage profiles of the simulated devices (population constants).

The figures are those of consumer MEMS parts (phone-grade BMI160/LSM6-class IMUs, the MPU-6050
on appliance boards) and of ordinary 32 kHz / MHz crystals, rounded. A device draws its own
parameters from these distributions once, from its seed (agent.simulator.device).
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.errors import AgentError
from protocol.names import AGENT_KINDS

DEVICE_KINDS = AGENT_KINDS  # ordered: a device's kind code (its index) seeds its streams


class SimError(AgentError):
    """A simulator request that cannot be met (unknown kind, impostor not applicable)."""


@dataclass(frozen=True)
class KindProfile:
    """What a device of one kind is made of and how it is used."""

    kind: str
    sample_rate_hz: float  # IMU output data rate of the at-rest capture
    dlpf_cutoff_hz: float  # the IMU's digital low-pass (anti-alias) filter
    accel_bias_sd_mg: float  # zero-g offset, per axis, across parts
    accel_scale_sd: float  # sensitivity error, fraction, across parts
    accel_tc_sd_mg_per_c: float  # zero-g offset drift with temperature, across parts
    accel_repeat_sd_mg: float  # turn-on to turn-on repeatability of the offset
    accel_nd_ug_rthz: float  # noise density, typical part
    gyro_bias_sd_dps: float  # zero-rate offset, per axis, across parts
    gyro_tc_sd_dps_per_c: float  # zero-rate offset drift with temperature
    gyro_repeat_sd_dps: float  # turn-on to turn-on repeatability of the zero-rate offset
    gyro_nd_mdps_rthz: float  # rate noise density, typical part
    tilt_max_deg: float  # rest pose: how far from level the device lies between sessions
    temp_mean_c: float  # die temperature over sessions: mean, sd, limits
    temp_sd_c: float
    temp_min_c: float
    temp_max_c: float
    warmup_span_c: tuple[float, float]  # temperature rise over the enrollment sessions
    latency_mean_us: float  # interrupt-to-timestamp latency of the host (exponential)
    vibration_prob: float  # chance that a session has ambient vibration (compressor, wind)
    touch: bool  # has a touch screen: sessions carry tap events
    accel_lsb_per_g: float = 16384.0  # +-2 g full scale
    gyro_lsb_per_dps: float = 131.0  # +-250 dps full scale
    n_samples: int = 256  # at-rest window


PROFILES: dict[str, KindProfile] = {
    "phone": KindProfile(
        kind="phone",
        sample_rate_hz=100.0,
        dlpf_cutoff_hz=40.0,
        accel_bias_sd_mg=15.0,
        accel_scale_sd=0.01,
        accel_tc_sd_mg_per_c=0.15,
        accel_repeat_sd_mg=0.2,
        accel_nd_ug_rthz=180.0,
        gyro_bias_sd_dps=0.8,
        gyro_tc_sd_dps_per_c=0.012,
        gyro_repeat_sd_dps=0.004,
        gyro_nd_mdps_rthz=7.0,
        tilt_max_deg=3.0,
        temp_mean_c=30.0,
        temp_sd_c=5.0,
        temp_min_c=5.0,
        temp_max_c=45.0,
        warmup_span_c=(6.0, 12.0),
        latency_mean_us=40.0,
        vibration_prob=0.1,
        touch=True,
    ),
    "wearable": KindProfile(
        kind="wearable",
        sample_rate_hz=50.0,
        dlpf_cutoff_hz=20.0,
        accel_bias_sd_mg=20.0,
        accel_scale_sd=0.012,
        accel_tc_sd_mg_per_c=0.2,
        accel_repeat_sd_mg=0.25,
        accel_nd_ug_rthz=250.0,
        gyro_bias_sd_dps=1.0,
        gyro_tc_sd_dps_per_c=0.015,
        gyro_repeat_sd_dps=0.005,
        gyro_nd_mdps_rthz=10.0,
        tilt_max_deg=2.0,
        temp_mean_c=31.0,
        temp_sd_c=3.0,
        temp_min_c=10.0,
        temp_max_c=42.0,
        warmup_span_c=(4.0, 9.0),
        latency_mean_us=60.0,
        vibration_prob=0.05,
        touch=True,
    ),
    "fridge": KindProfile(
        kind="fridge",
        sample_rate_hz=50.0,
        dlpf_cutoff_hz=21.0,
        accel_bias_sd_mg=30.0,
        accel_scale_sd=0.02,
        accel_tc_sd_mg_per_c=0.3,
        accel_repeat_sd_mg=0.3,
        accel_nd_ug_rthz=400.0,
        gyro_bias_sd_dps=2.0,
        gyro_tc_sd_dps_per_c=0.02,
        gyro_repeat_sd_dps=0.006,
        gyro_nd_mdps_rthz=5.0,
        tilt_max_deg=0.5,
        temp_mean_c=24.0,
        temp_sd_c=3.0,
        temp_min_c=10.0,
        temp_max_c=40.0,
        warmup_span_c=(4.0, 8.0),
        latency_mean_us=80.0,
        vibration_prob=0.4,
        touch=False,
    ),
    "ev": KindProfile(
        kind="ev",
        sample_rate_hz=100.0,
        dlpf_cutoff_hz=44.0,
        accel_bias_sd_mg=25.0,
        accel_scale_sd=0.015,
        accel_tc_sd_mg_per_c=0.25,
        accel_repeat_sd_mg=0.3,
        accel_nd_ug_rthz=300.0,
        gyro_bias_sd_dps=1.5,
        gyro_tc_sd_dps_per_c=0.02,
        gyro_repeat_sd_dps=0.006,
        gyro_nd_mdps_rthz=8.0,
        tilt_max_deg=4.0,
        temp_mean_c=18.0,
        temp_sd_c=10.0,
        temp_min_c=-20.0,
        temp_max_c=50.0,
        warmup_span_c=(6.0, 15.0),
        latency_mean_us=30.0,
        vibration_prob=0.3,
        touch=False,
    ),
}


def profile(kind: str) -> KindProfile:
    """The profile of a device kind; SimError names the kinds there are."""
    try:
        return PROFILES[kind]
    except KeyError:
        raise SimError(f"unknown device kind {kind!r}; one of {', '.join(DEVICE_KINDS)}") from None

"""Clocks of a simulated device: the host's crystal and the IMU's own oscillator.

The host's monotonic clock runs on a crystal with a per-board frequency error `skew_ppm` (at
25 C) and the parabolic temperature curve of a tuning-fork crystal (-0.034 ppm/C^2 around its
turnover point). The IMU paces its samples with an internal oscillator of its own (a few
thousand ppm off nominal, drifting linearly with temperature by some ppm per degree, as a
trimmed on-chip RC or MEMS-referenced oscillator does). The host stamps each sample
when its interrupt is served, after an exponentially distributed latency.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from agent.simulator.imu import T_REF_C

CRYSTAL_CURVATURE_PPM_PER_C2 = -0.034


@dataclass(frozen=True)
class Clocks:
    """Host crystal and IMU oscillator of one board."""

    skew_ppm: float  # host crystal frequency error at 25 C
    turnover_c: float  # temperature of the crystal's turnover point
    imu_osc_ppm: float  # IMU output-rate error at 25 C
    imu_osc_tc_ppm_per_c: float

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Clocks:
        return cls(
            skew_ppm=float(np.clip(rng.normal(0.0, 12.0), -40.0, 40.0)),
            turnover_c=float(rng.normal(25.0, 3.0)),
            imu_osc_ppm=float(rng.normal(0.0, 3000.0)),
            imu_osc_tc_ppm_per_c=float(rng.normal(0.0, 10.0)),
        )

    def host_skew_ppm(self, temp_c: float) -> float:
        """The host crystal's frequency error at a temperature."""
        return self.skew_ppm + CRYSTAL_CURVATURE_PPM_PER_C2 * (
            (temp_c - self.turnover_c) ** 2 - (T_REF_C - self.turnover_c) ** 2
        )

    def imu_rate_ppm(self, temp_c: float) -> float:
        return self.imu_osc_ppm + self.imu_osc_tc_ppm_per_c * (temp_c - T_REF_C)


def arrival_us(
    rng: np.random.Generator,
    n: int,
    sample_rate_hz: float,
    source_rate_ppm: float,
    host_skew_ppm: float,
    start_s: float,
    latency_mean_us: float,
) -> npt.NDArray[np.int64]:
    """Host monotonic timestamps (us) of n samples paced by a source `source_rate_ppm` fast.

    A software timer on the host itself is a source with source_rate_ppm = 0 and
    host_skew_ppm = 0: it runs on the clock that stamps it.
    """
    k = np.arange(n, dtype=np.float64)
    true_s = start_s + k / (sample_rate_hz * (1.0 + source_rate_ppm * 1e-6))
    host_us = true_s * (1.0 + host_skew_ppm * 1e-6) * 1e6
    stamped = np.floor(host_us + 5.0 + rng.exponential(latency_mean_us, n)).astype(np.int64)
    # Interrupts are served in order: each stamp is at least 1 us after the previous one.
    k_int = np.arange(n, dtype=np.int64)
    return np.maximum.accumulate(stamped - k_int) + k_int

"""The simulator: deterministic from seeds, physically distinct boards, the impostors' traces."""

from __future__ import annotations

import numpy as np
import pytest

from agent import features as f
from agent.simulator import SimDevice, SimError, applicable, impostor


def test_same_seed_same_bytes_other_seed_other_board() -> None:
    a, b = SimDevice(5, "ev").capture(2), SimDevice(5, "ev").capture(2)
    assert a.imu_raw.tobytes() == b.imu_raw.tobytes()
    assert a.imu_ts_us.tobytes() == b.imu_ts_us.tobytes() and a.temp_mc == b.temp_mc
    c = SimDevice(6, "ev").capture(2)
    assert abs(f.extract(a).gyro_bias_x_udps - f.extract(c).gyro_bias_x_udps) > 1000
    assert SimDevice(5, "ev").skew_ppm == SimDevice(5, "ev").skew_ppm != SimDevice(6, "ev").skew_ppm


def test_clock_skew_is_a_crystal() -> None:
    device = SimDevice(9, "phone")
    assert -40.0 <= device.skew_ppm <= 40.0
    # a tuning-fork crystal slows down away from its turnover point
    assert device.skew_ppm_at(60.0) < device.skew_ppm_at(25.0)


def test_rate_offset_measures_the_board_oscillators() -> None:
    device = SimDevice(3, "fridge")
    env = device.session_env(0)
    expected_ppm = device.clocks.imu_rate_ppm(env.temp_c) - device.clocks.host_skew_ppm(env.temp_c)
    measured_ppm = f.extract(device.render(env)).rate_ppb / 1000
    assert abs(measured_ppm - expected_ppm) < 25.0


def test_impostor_traces() -> None:
    victim = SimDevice(21, "phone")
    genuine = f.extract(victim.capture(0))
    assert genuine.repeat_pm == 0 and genuine.quant_gap_milli == 1000
    # some replay attacks loop a short clip: exact 6-axis repeats no real sensor produces
    loops = [f.extract(impostor("replay", victim, 1, seed)).repeat_pm for seed in range(12)]
    assert max(loops) > 200 and min(loops) == 0
    # careless emulators quantise floats coarsely: empty ADC codes
    gaps = [f.extract(impostor("emulator", victim, 1, seed)).quant_gap_milli for seed in range(12)]
    assert max(gaps) > 2000


def test_other_user_needs_touch() -> None:
    assert "other_user" not in applicable("fridge") and "other_user" in applicable("wearable")
    with pytest.raises(SimError, match="touch"):
        impostor("other_user", SimDevice(1, "fridge"), 0, 0)
    with pytest.raises(SimError, match="unknown"):
        SimDevice(1, "toaster")


def test_copied_key_is_another_board_of_the_same_kind() -> None:
    victim = SimDevice(4, "wearable")
    stolen = impostor("copied_key", victim, 0, 0)
    assert stolen.sample_rate_hz == victim.profile.sample_rate_hz
    assert not np.array_equal(stolen.imu_raw, victim.capture(0).imu_raw)

"""agent.features.extract against a plain reference written with numpy's convenience functions.

extract is tuned (ufuncs on all six axes at once, one sort per axis, cached fit bases); the
reference below says the same measures the obvious way, one axis or one statistic at a time, with
np.mean, np.std, np.median, np.unique and np.linalg.norm. The two must agree bit for bit on
genuine sessions of every device kind and on every impostor, so that a speed-up never moves a
fingerprint, a baseline or a model input.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from agent import features as f
from agent.features import Capture, Fingerprint
from agent.simulator import DEVICE_KINDS, SimDevice
from agent.simulator.impostors import applicable, impostor


def _int(value: float) -> int:
    return math.floor(abs(value) + 0.5) * (1 if value >= 0 else -1)


def _band(x: npt.NDArray[np.float64]) -> tuple[tuple[int, int], tuple[int, int]]:
    n = x.shape[0]
    freqs = np.arange(n // 2 + 1) / n  # rfftfreq in cycles per sample
    spectrum = np.abs(np.fft.rfft(x - x.mean(axis=0), axis=0)) ** 2

    def band_mean(lo: float, hi: float) -> npt.NDArray[np.float64]:
        top = freqs <= hi + 1e-12 if hi >= 0.5 else freqs < hi - 1e-12
        mean: npt.NDArray[np.float64] = spectrum[(freqs >= lo - 1e-12) & top].mean(axis=0)
        return mean

    low, mid, high = (band_mean(*b) for b in (f.BAND_LOW, f.BAND_MID, f.BAND_HIGH))
    out = []
    for cols in (slice(0, 3), slice(3, 6)):
        lo, mi, hi = (float(b[cols].sum()) + 1e-30 for b in (low, mid, high))
        out.append((_int(1000 * math.log10(mi / lo)), _int(1000 * math.log10(hi / lo))))
    return out[0], out[1]


def _quant_gap(raw: npt.NDArray[np.int16]) -> int:
    gaps = []
    for axis in range(6):
        steps = np.diff(np.sort(raw[:, axis]))
        distinct = steps[steps > 0]
        gaps.append(float(np.median(distinct.astype(np.float64))) if len(distinct) else 0.0)
    return _int(float(np.median(gaps)) * 1000)


def _timing(ts_us: npt.NDArray[np.int64], rate_hz: float) -> tuple[int, int]:
    k = np.arange(len(ts_us), dtype=np.float64)
    t = (ts_us - ts_us[0]).astype(np.float64)
    dk = k - k.mean()
    slope = float(dk @ (t - t.mean())) / float(dk @ dk)
    residual = t - t.mean() - slope * dk
    jitter_us = float(np.sqrt(np.mean(residual**2)))
    return _int((1e6 / rate_hz / slope - 1.0) * 1e9), _int(jitter_us * 1e3)


def _behaviour(iti_ms: npt.NDArray[np.int32], hold_ms: npt.NDArray[np.int32]) -> dict[str, int]:
    names = ("iti_median_us", "iti_logsd_milli", "hold_median_us", "hold_logsd_milli")
    if len(hold_ms) < f.MIN_TAPS:
        return dict.fromkeys(names, 0)

    def logsd(x: npt.NDArray[np.float64]) -> float:
        ln = np.log(x)
        return 1.4826 * float(np.median(np.abs(ln - np.median(ln))))

    iti, hold = iti_ms.astype(np.float64), hold_ms.astype(np.float64)
    values = (np.median(iti) * 1000, logsd(iti) * 1000, np.median(hold) * 1000, logsd(hold) * 1000)
    return {name: _int(float(v)) for name, v in zip(names, values, strict=True)}


def reference_extract(c: Capture) -> Fingerprint:
    raw = c.imu_raw.astype(np.float64)
    accel = raw[:, :3] / c.accel_lsb_per_g
    gyro = raw[:, 3:] / c.gyro_lsb_per_dps
    mean_g = gyro.mean(axis=0)
    (a_mid, a_high), (g_mid, g_high) = _band(np.hstack((accel, gyro)))
    rows = [bytes(r) for r in np.ascontiguousarray(c.imu_raw)]
    rate_ppb, jitter_ns = _timing(c.imu_ts_us, c.sample_rate_hz)
    return Fingerprint(
        accel_norm_ug=_int(float(np.linalg.norm(accel.mean(axis=0))) * 1e6),
        gyro_bias_x_udps=_int(mean_g[0] * 1e6),
        gyro_bias_y_udps=_int(mean_g[1] * 1e6),
        gyro_bias_z_udps=_int(mean_g[2] * 1e6),
        accel_noise_ug=_int(accel.std(axis=0).mean() * 1e6),
        gyro_noise_udps=_int(gyro.std(axis=0).mean() * 1e6),
        accel_band_mid_cdb=a_mid,
        accel_band_high_cdb=a_high,
        gyro_band_mid_cdb=g_mid,
        gyro_band_high_cdb=g_high,
        quant_gap_milli=_quant_gap(c.imu_raw),
        repeat_pm=_int(1000 * (len(rows) - len(set(rows))) / len(rows)),
        rate_ppb=rate_ppb,
        jitter_ns=jitter_ns,
        temp_mc=c.temp_mc,
        tc_accel_norm_ug_per_c=0,
        tc_gyro_x_udps_per_c=0,
        tc_gyro_y_udps_per_c=0,
        tc_gyro_z_udps_per_c=0,
        tc_rate_ppb_per_c=0,
        **_behaviour(c.tap_intervals_ms, c.tap_holds_ms),
    )


@pytest.mark.parametrize("kind", DEVICE_KINDS)
def test_extract_equals_the_plain_reference(kind: str) -> None:
    captures = []
    for seed in range(12):
        device = SimDevice(seed, kind)
        captures += [device.capture(session) for session in range(3)]
        captures += [impostor(name, device, 5, seed) for name in applicable(kind)]
    for capture in captures:
        assert f.extract(capture) == reference_extract(capture)


def test_quant_gap_of_a_coarse_sensor_and_repeats_of_a_looped_clip() -> None:
    # Hand-made: codes 0, 4, 8 ... (gap 4) on every axis, and the window looped twice.
    half = (np.arange(128, dtype=np.int16)[:, None] % 16 * 4) * np.ones((1, 6), dtype=np.int16)
    raw = np.vstack((half, half))
    capture = Capture(
        imu_raw=raw,
        imu_ts_us=np.arange(256, dtype=np.int64) * 10_000,
        sample_rate_hz=100.0,
        accel_lsb_per_g=16384.0,
        gyro_lsb_per_dps=131.0,
        temp_mc=25_000,
        tap_intervals_ms=np.array([], dtype=np.int32),
        tap_holds_ms=np.array([], dtype=np.int32),
    )
    fp = f.extract(capture)
    assert fp.quant_gap_milli == 4000
    assert fp.repeat_pm == 938  # 16 distinct rows, the other 240 repeat: 937.5 per mille
    assert fp.rate_ppb == 0 and fp.jitter_ns == 0  # paced exactly at the nominal rate
    assert fp == reference_extract(capture)

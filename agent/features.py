"""Device fingerprint and behaviour features: capture -> Fingerprint -> model input vector.

Pure numpy, no I/O. Three steps, each a function:

1. `extract(capture) -> Fingerprint`: the measures of one session. A `Capture` is what any sensor
   source (the simulator, Linux IIO, an MPU-6050 on I2C, a replayed file) hands over: a raw
   int16 IMU window taken at rest with its arrival timestamps on the host's monotonic clock, the
   session temperature reading, and the touch events of the session where the device has touch.
2. `enroll(fingerprints) -> Fingerprint`: the enrolled baseline from several sessions spread over
   a temperature range (a warm-up at provisioning). It adds what one session cannot measure: the
   per-device temperature coefficients of the gyro biases and of the gravity norm.
3. `model_input(current, baseline, normalisation) -> float32 vector`: deltas of the current
   session against the baseline, temperature-compensated with the baseline's coefficients, scaled
   by the per-feature scales recorded in models/risk-v1.json, squashed and clipped.

The wire form (`Fingerprint.to_wire`, keys 0..23, signed 64-bit fixed-point integers) goes into
a report's `fingerprint` field and an enrollment's `baseline` (protocol.messages). Every field
name carries its unit; the key of each field is its position in `FINGERPRINT_FIELDS`.

Devices without a touch screen (fridges, EVs) report zeros in the four behaviour fields (keys
20..23); their behaviour block in the model input is all zeros with the `has_touch` flag 0, a
fixed neutral block that carries no evidence either way. So does a session with fewer than
`MIN_TAPS` taps on a touch device (`Fingerprint.has_touch` is `iti_median_us > 0`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.fingerprint import (
    FINGERPRINT_FIELDS,
    INT64_MAX,
    INT64_MIN,
    Capture,
    FeatureError,
    Fingerprint,
)

__all__ = [  # the value types live in agent.fingerprint; the features API names them too
    "FINGERPRINT_FIELDS",
    "INT64_MAX",
    "INT64_MIN",
    "Capture",
    "FeatureError",
    "Fingerprint",
    "enroll",
    "extract",
    "model_input",
]

#: Fewer taps than this in a session and its behaviour measures are not estimated (left 0).
MIN_TAPS = 8
#: Enrollment fits temperature coefficients only from this many sessions over this span.
MIN_ENROLL_SESSIONS = 3
MIN_ENROLL_SPAN_MC = 3000

#: Spectral bands of the at-rest noise, as fractions of the sample rate (Nyquist is 0.5), so
#: that kinds with different sample rates compare alike. The low band sees 1/f (flicker) noise,
#: the high band the roll-off of the sensor's digital low-pass filter near Nyquist.
BAND_LOW = (0.02, 0.12)
BAND_MID = (0.12, 0.30)
BAND_HIGH = (0.40, 0.50)

#: Inputs are squashed with sign(x) * ln(1 + |x|) after scaling, then clipped to +-CLIP.
CLIP = 8.0


#: The model input, in order. See docs/model.md for what each one measures and why.
INPUT_FEATURES: tuple[str, ...] = (
    "d_accel_norm_ug",  # temperature-compensated against the baseline
    "d_gyro_bias_x_udps",
    "d_gyro_bias_y_udps",
    "d_gyro_bias_z_udps",
    "d_ln_accel_noise",
    "d_ln_gyro_noise",
    "d_accel_band_mid_cdb",
    "d_accel_band_high_cdb",
    "d_gyro_band_mid_cdb",
    "d_gyro_band_high_cdb",
    "d_ln_quant_gap",
    "repeat_pm",  # absolute: a real sensor never repeats a 6-axis sample exactly
    "d_rate_ppb",  # temperature-compensated too: the IMU's oscillator drifts
    "d_ln_jitter",
    "d_temp_c",  # context: how far the compensation extrapolates
    "has_touch",
    "d_ln_iti_median",
    "d_iti_logsd_milli",
    "d_ln_hold_median",
    "d_hold_logsd_milli",
)
N_INPUTS = len(INPUT_FEATURES)


# ---- 1. one session --------------------------------------------------------------------------


def extract(capture: Capture) -> Fingerprint:
    """The fingerprint of one session: calibration, noise, clock and behaviour measures.

    It runs once per report, so it calls numpy's ufuncs directly on all six axes at once rather
    than its per-axis convenience methods (their Python wrappers cost more than the arithmetic
    on 256 samples). Every step is the same operation in the same order as `x.mean(axis=0)`,
    `x.std(axis=0)` and `np.linalg.norm`, so the fingerprint is bit for bit what those give
    (tests/model/test_features_reference.py holds a plain reference written with them).
    """
    raw = capture.imu_raw
    n = raw.shape[0]
    x = raw.astype(np.float64)
    x /= _lsb_row(capture.accel_lsb_per_g, capture.gyro_lsb_per_dps)  # g and deg/s
    mean = np.add.reduce(x, axis=0) / n
    dev = x - mean
    (a_mid, a_high), (g_mid, g_high) = _band_shapes(dev)
    np.multiply(dev, dev, out=dev)
    std = np.sqrt(np.add.reduce(dev, axis=0) / n)
    mean_a = mean[:3]
    rate_ppb, jitter_ns = _timing(capture.imu_ts_us, capture.sample_rate_hz)
    behaviour = _behaviour(capture.tap_intervals_ms, capture.tap_holds_ms)
    return Fingerprint(
        accel_norm_ug=_int(math.sqrt(float(mean_a.dot(mean_a))) * 1e6),
        gyro_bias_x_udps=_int(float(mean[3]) * 1e6),
        gyro_bias_y_udps=_int(float(mean[4]) * 1e6),
        gyro_bias_z_udps=_int(float(mean[5]) * 1e6),
        accel_noise_ug=_int(float(np.add.reduce(std[:3])) / 3 * 1e6),
        gyro_noise_udps=_int(float(np.add.reduce(std[3:])) / 3 * 1e6),
        accel_band_mid_cdb=a_mid,
        accel_band_high_cdb=a_high,
        gyro_band_mid_cdb=g_mid,
        gyro_band_high_cdb=g_high,
        quant_gap_milli=_quant_gap_milli(raw),
        repeat_pm=_repeat_pm(raw),
        rate_ppb=rate_ppb,
        jitter_ns=jitter_ns,
        temp_mc=capture.temp_mc,
        tc_accel_norm_ug_per_c=0,
        tc_gyro_x_udps_per_c=0,
        tc_gyro_y_udps_per_c=0,
        tc_gyro_z_udps_per_c=0,
        tc_rate_ppb_per_c=0,
        **behaviour,
    )


@functools.lru_cache(maxsize=8)
def _lsb_row(accel_lsb_per_g: float, gyro_lsb_per_dps: float) -> npt.NDArray[np.float64]:
    """The divisor of each IMU column: three accelerometer sensitivities, three gyro ones."""
    row = np.array([accel_lsb_per_g] * 3 + [gyro_lsb_per_dps] * 3, dtype=np.float64)
    row.setflags(write=False)
    return row


def _median(x: npt.ArrayLike) -> float:
    """np.median of a small 1-d array, bit for bit, without its general-purpose overhead (it
    ran 13 times per capture and cost a third of the feature extraction)."""
    a = np.sort(np.asarray(x, dtype=np.float64), axis=None)
    h = a.size // 2
    return float(a[h]) if a.size % 2 else float((a[h - 1] + a[h]) / 2)


def _int(value: float) -> int:
    """Round half away from zero to a Python int (a fixed-point field)."""
    return math.floor(abs(value) + 0.5) * (1 if value >= 0 else -1)


@functools.lru_cache(maxsize=8)
def _band_slices(n: int) -> tuple[slice, slice, slice]:
    """Bins of rfftfreq(n) (k / n, cycles per sample) in the low, mid and high bands."""

    def bins(lo: float, hi: float) -> slice:
        first = math.ceil(lo * n - 1e-9)
        last = n // 2 if hi >= 0.5 else math.ceil(hi * n - 1e-9) - 1
        return slice(first, last + 1)

    return bins(*BAND_LOW), bins(*BAND_MID), bins(*BAND_HIGH)


def _band_shapes(centred: npt.NDArray[np.float64]) -> tuple[tuple[int, int], tuple[int, int]]:
    """Mid- and high-band noise power relative to the low band, centi-dB, mean over the three
    axes, for the accelerometer (columns 0-2) and the gyroscope (3-5): one FFT for both, of the
    window less its mean.

    Ratios, not levels: the level is in the noise rms already, the shape is what tells a real
    sensor (flicker noise below, the anti-alias low-pass near Nyquist) from white noise.
    """
    spectrum = np.abs(np.fft.rfft(centred, axis=0))
    np.multiply(spectrum, spectrum, out=spectrum)
    low, mid, high = (
        np.add.reduce(spectrum[band], axis=0) / (band.stop - band.start)
        for band in _band_slices(centred.shape[0])
    )
    out = []
    for cols in (slice(0, 3), slice(3, 6)):
        lo = float(np.add.reduce(low[cols])) + 1e-30
        mi = float(np.add.reduce(mid[cols])) + 1e-30
        hi = float(np.add.reduce(high[cols])) + 1e-30
        out.append((_int(1000 * math.log10(mi / lo)), _int(1000 * math.log10(hi / lo))))
    return out[0], out[1]


def _quant_gap_milli(raw: npt.NDArray[np.int16]) -> int:
    """Median over axes of the median gap between adjacent distinct values, in milli-LSB.

    A real ADC fills every code its noise reaches (gap 1); a sensor synthesised from floats
    with a coarse resolution leaves codes empty.
    """
    columns = np.ascontiguousarray(raw.T)  # one row per axis: sorts run on contiguous memory
    columns.sort(axis=1)
    steps = np.diff(columns, axis=1)  # int16, as the sensor's codes are
    positive = steps > 0  # gaps between adjacent distinct values
    counts = np.add.reduce(positive, axis=1).tolist()
    # The other steps sort last, so each row's first `count` entries are its sorted gaps.
    steps[~positive] = np.iinfo(np.int16).max
    steps.sort(axis=1)
    gaps = []
    for row, count in zip(steps.tolist(), counts, strict=True):
        h = count // 2
        if count == 0:
            gaps.append(0.0)
        else:
            gaps.append(float(row[h]) if count % 2 else (float(row[h - 1]) + float(row[h])) / 2)
    gaps.sort()
    return _int((gaps[2] + gaps[3]) / 2 * 1000)  # the median of the six axes


def _repeat_pm(raw: npt.NDArray[np.int16]) -> int:
    """Per-mille of samples whose six values all equal an earlier sample of the window."""
    rows = np.ascontiguousarray(raw).view(np.dtype((np.void, raw.dtype.itemsize * 6))).ravel()
    distinct = len(set(rows.tolist()))  # each row's 12 bytes
    return _int(1000 * (len(rows) - distinct) / len(rows))


@functools.lru_cache(maxsize=8)
def _line_basis(n: int) -> tuple[npt.NDArray[np.float64], float]:
    """Sample index less its mean, and that vector's squared norm (the fit's denominator)."""
    k = np.arange(n, dtype=np.float64)
    dk = k - k.mean()
    dk.setflags(write=False)
    return dk, float(dk @ dk)


def _timing(ts_us: npt.NDArray[np.int64], sample_rate_hz: float) -> tuple[int, int]:
    """IMU output-rate offset against the host clock (ppb) and arrival jitter (ns, rms).

    The IMU paces samples with its own oscillator and the host stamps them with its crystal:
    the fitted period compares the two oscillators (Kohno et al. 2005 do the same across a
    network), which is a property of the board.
    """
    n = len(ts_us)
    dk, dk_dk = _line_basis(n)
    t = (ts_us - ts_us[0]).astype(np.float64)
    # Least squares line, closed form (np.polyfit's SVD cost more than the rest of extract).
    t -= np.add.reduce(t) / n
    slope = float(dk @ t) / dk_dk
    residual = t - slope * dk
    nominal_us = 1e6 / sample_rate_hz
    jitter_us = math.sqrt(float(np.add.reduce(residual * residual)) / n)
    return _int((nominal_us / slope - 1.0) * 1e9), _int(jitter_us * 1e3)


def _robust_sd(x: npt.NDArray[np.float64]) -> float:
    """1.4826 * median absolute deviation: an sd that a few long pauses cannot inflate."""
    return 1.4826 * _median(np.abs(x - _median(x)))


def _behaviour(iti_ms: npt.NDArray[np.int32], hold_ms: npt.NDArray[np.int32]) -> dict[str, int]:
    if len(hold_ms) < MIN_TAPS:
        return {
            "iti_median_us": 0,
            "iti_logsd_milli": 0,
            "hold_median_us": 0,
            "hold_logsd_milli": 0,
        }
    iti = iti_ms.astype(np.float64)
    hold = hold_ms.astype(np.float64)
    return {
        "iti_median_us": _int(_median(iti) * 1000),
        "iti_logsd_milli": _int(_robust_sd(np.log(iti)) * 1000),
        "hold_median_us": _int(_median(hold) * 1000),
        "hold_logsd_milli": _int(_robust_sd(np.log(hold)) * 1000),
    }


# ---- 2. the enrolled baseline ----------------------------------------------------------------

_TEMPERATURE_FIT = {
    "accel_norm_ug": "tc_accel_norm_ug_per_c",
    "gyro_bias_x_udps": "tc_gyro_x_udps_per_c",
    "gyro_bias_y_udps": "tc_gyro_y_udps_per_c",
    "gyro_bias_z_udps": "tc_gyro_z_udps_per_c",
    "rate_ppb": "tc_rate_ppb_per_c",
}
_BEHAVIOUR = ("iti_median_us", "iti_logsd_milli", "hold_median_us", "hold_logsd_milli")


def enroll(sessions: Sequence[Fingerprint]) -> Fingerprint:
    """The baseline of a device from its enrollment sessions.

    The gyro biases, the gravity norm and the IMU rate offset are fitted linearly against the
    session temperature: the intercept at the mean temperature is the baseline value and the
    slope its temperature coefficient (0 when there are fewer than MIN_ENROLL_SESSIONS sessions
    or they span less than MIN_ENROLL_SPAN_MC). Every other measure is the median over the
    sessions; behaviour uses only sessions with touch measures (all zero when there are none).
    """
    if not sessions:
        raise FeatureError("enroll needs at least one session fingerprint")
    temps = np.array([s.temp_mc for s in sessions], dtype=np.float64)
    t_ref = float(temps.mean())
    fit_slopes = (
        len(sessions) >= MIN_ENROLL_SESSIONS and temps.max() - temps.min() >= MIN_ENROLL_SPAN_MC
    )
    out: dict[str, int] = {}
    for name in FINGERPRINT_FIELDS:
        if name.startswith("tc_") or name in _BEHAVIOUR:
            continue
        values = np.array([getattr(s, name) for s in sessions], dtype=np.float64)
        out[name] = _int(float(np.median(values)))
    out["temp_mc"] = _int(t_ref)
    for name, tc_name in _TEMPERATURE_FIT.items():
        values = np.array([getattr(s, name) for s in sessions], dtype=np.float64)
        if fit_slopes:
            dt_c = (temps - t_ref) / 1000.0
            slope = float(np.sum(dt_c * (values - values.mean())) / np.sum(dt_c**2))
            out[name] = _int(float(values.mean()))
            out[tc_name] = _int(slope)
        else:
            out[tc_name] = 0
    touch = [s for s in sessions if s.has_touch]
    for name in _BEHAVIOUR:
        values = np.array([getattr(s, name) for s in touch], dtype=np.float64)
        out[name] = _int(float(np.median(values))) if touch else 0
    return Fingerprint(**out)


# ---- 3. the model input ----------------------------------------------------------------------


def raw_deltas(current: Fingerprint, baseline: Fingerprint) -> npt.NDArray[np.float64]:
    """The unscaled input features (INPUT_FEATURES order), in the units their names carry."""
    dt_c = (current.temp_mc - baseline.temp_mc) / 1000.0

    def compensated(name: str) -> float:
        tc = getattr(baseline, _TEMPERATURE_FIT[name])
        return float(getattr(current, name) - (getattr(baseline, name) + tc * dt_c))

    def ln_ratio(name: str) -> float:
        return math.log(max(getattr(current, name), 1) / max(getattr(baseline, name), 1))

    touch = current.has_touch and baseline.has_touch
    behaviour = (
        [
            1.0,
            ln_ratio("iti_median_us"),
            float(current.iti_logsd_milli - baseline.iti_logsd_milli),
            ln_ratio("hold_median_us"),
            float(current.hold_logsd_milli - baseline.hold_logsd_milli),
        ]
        if touch
        else [0.0] * 5
    )
    return np.array(
        [
            compensated("accel_norm_ug"),
            compensated("gyro_bias_x_udps"),
            compensated("gyro_bias_y_udps"),
            compensated("gyro_bias_z_udps"),
            ln_ratio("accel_noise_ug"),
            ln_ratio("gyro_noise_udps"),
            float(current.accel_band_mid_cdb - baseline.accel_band_mid_cdb),
            float(current.accel_band_high_cdb - baseline.accel_band_high_cdb),
            float(current.gyro_band_mid_cdb - baseline.gyro_band_mid_cdb),
            float(current.gyro_band_high_cdb - baseline.gyro_band_high_cdb),
            ln_ratio("quant_gap_milli"),
            float(current.repeat_pm),
            compensated("rate_ppb"),
            ln_ratio("jitter_ns"),
            dt_c,
            *behaviour,
        ],
        dtype=np.float64,
    )


@dataclass(frozen=True)
class Normalisation:
    """Per-feature scales of the model input, as recorded in the model's .json.

    Each raw delta is divided by its scale (a robust sd of that delta over genuine training
    sessions, or a fixed physical unit), squashed by sign(x) * ln(1 + |x|) so that an impostor's
    delta of thousands of sds stays in range, and clipped to +-`clip`.
    """

    names: tuple[str, ...]
    scales: tuple[float, ...]
    clip: float = CLIP

    def __post_init__(self) -> None:
        if self.names != INPUT_FEATURES:
            raise FeatureError(
                "normalisation features differ from agent.features.INPUT_FEATURES: the model "
                "was trained for another feature layout; retrain or use the matching agent"
            )
        if len(self.scales) != len(self.names):
            raise FeatureError("one scale per input feature is needed")
        if not all(isinstance(s, float) and math.isfinite(s) and s > 0 for s in self.scales):
            raise FeatureError("every scale must be a positive finite float")
        if not (math.isfinite(self.clip) and self.clip > 0):
            raise FeatureError("clip must be positive")

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> Normalisation:
        """From the `input` block of models/<model>.json."""
        try:
            block = meta["input"]
            return cls(
                names=tuple(str(n) for n in block["features"]),
                scales=tuple(float(s) for s in block["scales"]),
                clip=float(block["clip"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise FeatureError(f"model metadata has no valid input block: {exc}") from exc

    def to_meta(self) -> dict[str, Any]:
        return {"features": list(self.names), "scales": list(self.scales), "clip": self.clip}

    def apply(self, raw: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
        """Scale, squash and clip raw deltas of shape (..., N_INPUTS)."""
        x = raw / np.asarray(self.scales, dtype=np.float64)
        y = np.sign(x) * np.log1p(np.abs(x))
        out: npt.NDArray[np.float32] = np.clip(y, -self.clip, self.clip).astype(np.float32)
        return out


def model_input(
    current: Fingerprint, baseline: Fingerprint, normalisation: Normalisation
) -> npt.NDArray[np.float32]:
    """The model's float32 input vector (length N_INPUTS) for a session against its baseline."""
    return normalisation.apply(raw_deltas(current, baseline))

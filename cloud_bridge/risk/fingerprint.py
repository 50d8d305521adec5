"""Which board sent this report: the session fingerprint against enrolled baselines.

AccelPrint (Dey, Roy, Xu, Choudhury and Nelakuditi, "AccelPrint: Imperfections of
Accelerometers Make Smartphones Trackable", NDSS 2014) identified 80 accelerometer chips at over
96 % from the imperfections in their readings. Here the imperfections are those the device
reports in every `fingerprint` (agent.fingerprint): the gyro's zero-rate offsets, the gravity
norm seen through the accelerometer's gain and offset, the noise levels and spectral shape of
both sensors, and the IMU oscillator's rate against the host clock. The bridge enrolled each
board's baseline (with its temperature coefficients) itself, so a session can be compared with
every baseline, temperature-compensated exactly as the model input is (agent.features
`raw_deltas`), and scaled by how much each measure varies between sessions of one board
(`IdentityScales`, fitted on genuine sessions: `fit_scales`).

The distance sums log(1 + z^2) over the measures, z a scaled delta: near the square for small
deltas, but one measure thrown far by a disturbance (a vibration tone in the noise bands)
counts about as much as a few sds, not thousands. Three uses:

- `Gallery.identify`: the nearest enrolled board, and how far the runner-up is (identification;
  `python -m tools.eval_risk fingerprint` measures top-1 over 1,000 boards).
- `distance`: one report against its own device's baseline (the clone signal's evidence).
- `Drift.update`: an exponentially weighted mean of the own-baseline distance; when it stays
  above `DriftPolicy.limit`, the part has aged or been re-mounted and wants re-enrollment.

Pure numpy, no I/O.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from agent.features import FINGERPRINT_FIELDS, INPUT_FEATURES, Fingerprint, raw_deltas
from cloud_bridge.errors import BridgeError

#: The model input features that belong to the board (not to context or to its owner), with
#: how each is formed from the fingerprint: "tc" temperature-compensated difference (through
#: the baseline's `tc_*` coefficient), "ln" log ratio, "diff" plain difference.
IDENTITY_FEATURES: tuple[tuple[str, str, str, str], ...] = (
    # (input feature, fingerprint field, form, temperature coefficient field)
    ("d_accel_norm_ug", "accel_norm_ug", "tc", "tc_accel_norm_ug_per_c"),
    ("d_gyro_bias_x_udps", "gyro_bias_x_udps", "tc", "tc_gyro_x_udps_per_c"),
    ("d_gyro_bias_y_udps", "gyro_bias_y_udps", "tc", "tc_gyro_y_udps_per_c"),
    ("d_gyro_bias_z_udps", "gyro_bias_z_udps", "tc", "tc_gyro_z_udps_per_c"),
    ("d_ln_accel_noise", "accel_noise_ug", "ln", ""),
    ("d_ln_gyro_noise", "gyro_noise_udps", "ln", ""),
    ("d_accel_band_mid_cdb", "accel_band_mid_cdb", "diff", ""),
    ("d_accel_band_high_cdb", "accel_band_high_cdb", "diff", ""),
    ("d_gyro_band_mid_cdb", "gyro_band_mid_cdb", "diff", ""),
    ("d_gyro_band_high_cdb", "gyro_band_high_cdb", "diff", ""),
    ("d_rate_ppb", "rate_ppb", "tc", "tc_rate_ppb_per_c"),
)
IDENTITY_NAMES: tuple[str, ...] = tuple(f[0] for f in IDENTITY_FEATURES)
_COLUMNS = [INPUT_FEATURES.index(name) for name in IDENTITY_NAMES]
FINGERPRINT_CACHE = 4096
"""Parsed fingerprints remembered (`parse`): a batch's reports and their devices' baselines."""


_INT = frozenset({int})
_WIRE_ORDER = tuple(range(len(FINGERPRINT_FIELDS)))


def parse(wire: Mapping[int, int]) -> Fingerprint:
    """`Fingerprint.from_wire`, remembered by content: the judge reads each report's
    fingerprint twice (the server score, the identity distance) and its device's baseline with
    every report. Fingerprints are frozen, so one may be shared. FeatureError as from_wire."""
    values = tuple(wire.values())
    # The remembered path takes keys 0..23 in order (as decoded and as stored) and exact ints
    # (True == 1 must not find a cached 1); anything else is from_wire's to judge.
    if tuple(wire) != _WIRE_ORDER or not _INT.issuperset(map(type, values)):
        return Fingerprint.from_wire(wire)
    return _parse(values)


@functools.lru_cache(maxsize=FINGERPRINT_CACHE)
def _parse(values: tuple[int, ...]) -> Fingerprint:
    return Fingerprint(*values)  # in field order, checked by __post_init__


#: Robust sd from the median absolute deviation of a normal sample.
MAD_TO_SD = 1.4826


class FingerprintError(BridgeError):
    """Scales, baselines or a policy that cannot be used, with the reason."""


@dataclass(frozen=True)
class IdentityScales:
    """Between-session sd of each identity measure on one board, in its own unit."""

    scales: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.scales) != len(IDENTITY_FEATURES):
            raise FingerprintError(f"need {len(IDENTITY_FEATURES)} scales ({IDENTITY_NAMES})")
        if not all(isinstance(s, float) and math.isfinite(s) and s > 0 for s in self.scales):
            raise FingerprintError("every identity scale must be a positive finite float")

    def to_json(self) -> dict[str, float]:
        return dict(zip(IDENTITY_NAMES, self.scales, strict=True))


DELTAS_CACHE = 64
"""(session, baseline) pairs whose raw deltas are remembered (`deltas`)."""


@functools.lru_cache(maxsize=DELTAS_CACHE)
def deltas(current: Fingerprint, baseline: Fingerprint) -> npt.NDArray[np.float64]:
    """`agent.features.raw_deltas`, remembered for the last pairs and read-only: the judge
    needs them twice per report (the server score's model input, the identity distance)."""
    out = raw_deltas(current, baseline)
    out.setflags(write=False)
    return out


def identity_deltas(current: Fingerprint, baseline: Fingerprint) -> npt.NDArray[np.float64]:
    """The identity measures of a session against a baseline (the model input's raw deltas)."""
    out: npt.NDArray[np.float64] = deltas(current, baseline)[_COLUMNS]
    return out


def fit_scales(deltas: npt.ArrayLike) -> IdentityScales:
    """Scales from genuine sessions' identity deltas, shape (sessions, measures): the robust sd
    of each column (MAD_TO_SD * median absolute deviation from 0: a genuine delta centres on
    0, and the median ignores the odd disturbed session)."""
    d = np.asarray(deltas, dtype=np.float64)
    if d.ndim != 2 or d.shape[1] != len(IDENTITY_FEATURES) or d.shape[0] < 10:
        raise FingerprintError(
            f"fit_scales needs (10 or more sessions, {len(IDENTITY_FEATURES)}) deltas"
        )
    scales = MAD_TO_SD * np.median(np.abs(d), axis=0)
    if not np.all(scales > 0):
        zero = [n for n, s in zip(IDENTITY_NAMES, scales, strict=True) if not s > 0]
        raise FingerprintError(f"identity measures with no spread in the sample: {zero}")
    return IdentityScales(tuple(float(s) for s in scales))


def score(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Distance from scaled deltas (last axis: measures): sum of log(1 + z^2)."""
    out: npt.NDArray[np.float64] = np.log1p(z * z).sum(axis=-1)
    return out


def distance(current: Fingerprint, baseline: Fingerprint, scales: IdentityScales) -> float:
    """How far a session is from one baseline (0 for a perfect match)."""
    z = identity_deltas(current, baseline) / np.asarray(scales.scales)
    return float(score(z))


@dataclass(frozen=True)
class Identification:
    """The nearest enrolled board, its distance and the runner-up's."""

    device: str
    distance: float
    runner_up: str
    runner_up_distance: float

    @property
    def margin(self) -> float:
        return self.runner_up_distance - self.distance


@dataclass(frozen=True, eq=False)
class Gallery:
    """Enrolled baselines stacked as arrays, to compare one session with all of them at once.

    Build with `Gallery.of(baselines, scales)`; the arrays are read-only.
    """

    devices: tuple[str, ...]
    scales: IdentityScales
    value: npt.NDArray[np.float64]  # (devices, measures): baseline values
    tc: npt.NDArray[np.float64]  # (devices, measures): temperature coefficients per C, or 0
    temp_c: npt.NDArray[np.float64]  # (devices,): the baseline's mean temperature

    @classmethod
    def of(cls, baselines: Mapping[str, Fingerprint], scales: IdentityScales) -> Gallery:
        if len(baselines) < 2:
            raise FingerprintError("a gallery needs two or more enrolled baselines")
        devices = tuple(baselines)
        value = np.array(
            [[float(getattr(b, f[1])) for f in IDENTITY_FEATURES] for b in baselines.values()]
        )
        tc = np.array(
            [
                [float(getattr(b, f[3])) if f[2] == "tc" else 0.0 for f in IDENTITY_FEATURES]
                for b in baselines.values()
            ]
        )
        temp = np.array([b.temp_mc / 1000.0 for b in baselines.values()])
        for arr in (value, tc, temp):
            arr.setflags(write=False)
        return cls(devices, scales, value, tc, temp)

    def deltas(self, current: Fingerprint) -> npt.NDArray[np.float64]:
        """(devices, measures) identity deltas of a session against every baseline; row i is
        `identity_deltas(current, baseline_i)`."""
        cur = np.array([float(getattr(current, f[1])) for f in IDENTITY_FEATURES])
        forms = [f[2] for f in IDENTITY_FEATURES]
        dt = current.temp_mc / 1000.0 - self.temp_c
        out = np.empty_like(self.value)
        for j, form in enumerate(forms):
            if form == "tc":
                out[:, j] = cur[j] - (self.value[:, j] + self.tc[:, j] * dt)
            elif form == "ln":
                out[:, j] = np.log(max(cur[j], 1.0) / np.maximum(self.value[:, j], 1.0))
            else:
                out[:, j] = cur[j] - self.value[:, j]
        return out

    def distances(
        self, current: Fingerprint, measures: Sequence[str] = IDENTITY_NAMES
    ) -> npt.NDArray[np.float64]:
        """Distance to every baseline, over `measures` (all by default; a subset measures
        what the rest contribute)."""
        unknown = set(measures) - set(IDENTITY_NAMES)
        if unknown or not measures:
            raise FingerprintError(f"measures must be some of {IDENTITY_NAMES}: {unknown}")
        cols = [IDENTITY_NAMES.index(m) for m in measures]
        z = self.deltas(current)[:, cols] / np.asarray(self.scales.scales)[cols]
        return score(z)

    def identify(self, current: Fingerprint) -> Identification:
        d = self.distances(current)
        first, second = np.argsort(d, kind="stable")[:2]
        return Identification(
            self.devices[first], float(d[first]), self.devices[second], float(d[second])
        )


@dataclass(frozen=True)
class DriftPolicy:
    """`weight`: of each new distance in the running mean; `limit`: the mean above which the
    baseline is stale; `min_reports`: before which no drift is called."""

    weight: float = 0.05
    limit: float = 12.0
    min_reports: int = 20

    def __post_init__(self) -> None:
        if not 0 < self.weight <= 1:
            raise FingerprintError(f"drift weight = {self.weight} must be in (0, 1]; e.g. 0.05")
        if not (math.isfinite(self.limit) and self.limit > 0):
            raise FingerprintError(f"drift limit = {self.limit} must be positive; e.g. 12.0")
        if type(self.min_reports) is not int or self.min_reports < 1:
            raise FingerprintError(f"drift min_reports = {self.min_reports} must be >= 1")


@dataclass(frozen=True)
class Drift:
    """Running mean of one device's own-baseline distance. `update` returns the next value."""

    mean: float = 0.0
    reports: int = 0

    def update(self, dist: float, policy: DriftPolicy) -> Drift:
        if not (math.isfinite(dist) and dist >= 0):
            raise FingerprintError(f"a distance must be finite and >= 0, got {dist!r}")
        if self.reports == 0:
            return Drift(dist, 1)
        return Drift(self.mean + policy.weight * (dist - self.mean), self.reports + 1)

    def drifting(self, policy: DriftPolicy) -> bool:
        return self.reports >= policy.min_reports and self.mean > policy.limit


def deltas_of(sessions: Sequence[Fingerprint], baseline: Fingerprint) -> npt.NDArray[np.float64]:
    """(sessions, measures) identity deltas of one board's sessions against its baseline."""
    return np.array([identity_deltas(s, baseline) for s in sessions])

"""Fingerprint identification and drift (cloud_bridge.risk.fingerprint) and its evaluation."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from agent.features import FINGERPRINT_FIELDS, INPUT_FEATURES, Fingerprint, raw_deltas
from cloud_bridge.risk import fingerprint as fp
from tools.eval_risk import sig_fingerprint

UNIT = fp.IdentityScales(tuple(1.0 for _ in fp.IDENTITY_FEATURES))


def _fp(**values: int) -> Fingerprint:
    """A fingerprint of plausible positive levels, with the given fields set."""
    base = dict.fromkeys(FINGERPRINT_FIELDS, 0)
    base.update(accel_norm_ug=1_000_000, accel_noise_ug=2_000, gyro_noise_udps=50_000)
    base.update(quant_gap_milli=1000, jitter_ns=40_000, temp_mc=25_000)
    base.update(values)
    return Fingerprint(**base)


def test_distance__one_unit_off_on_one_measure_is_ln2() -> None:
    baseline = _fp(gyro_bias_x_udps=5_000)
    assert fp.distance(baseline, baseline, UNIT) == 0.0
    assert fp.distance(_fp(gyro_bias_x_udps=5_001), baseline, UNIT) == pytest.approx(math.log(2))
    # Two sds on one measure: ln(1 + 4).
    scales = replace(UNIT, scales=(1.0, 0.5, *UNIT.scales[2:]))
    assert fp.distance(_fp(gyro_bias_x_udps=5_001), baseline, scales) == pytest.approx(math.log(5))


def test_distance__temperature_compensated_with_the_baselines_coefficient() -> None:
    baseline = _fp(gyro_bias_x_udps=5_000, tc_gyro_x_udps_per_c=100, temp_mc=25_000)
    warm = _fp(gyro_bias_x_udps=5_200, temp_mc=27_000)  # 2 C warmer, 200 udps more: expected
    assert fp.distance(warm, baseline, UNIT) == 0.0
    cold_off = _fp(gyro_bias_x_udps=5_200, temp_mc=25_000)  # the same reading at 25 C is off
    assert fp.distance(cold_off, baseline, UNIT) == pytest.approx(math.log1p(200**2))


def test_identity_deltas__are_the_model_inputs_raw_deltas() -> None:
    cur = _fp(accel_noise_ug=2_400, gyro_band_high_cdb=-300, rate_ppb=12_000, temp_mc=30_000)
    base = _fp(rate_ppb=11_000, tc_rate_ppb_per_c=50, accel_band_mid_cdb=20)
    full = raw_deltas(cur, base)
    got = fp.identity_deltas(cur, base)
    assert got[fp.IDENTITY_NAMES.index("d_rate_ppb")] == pytest.approx(12_000 - (11_000 + 250))
    assert got[fp.IDENTITY_NAMES.index("d_ln_accel_noise")] == pytest.approx(math.log(1.2))
    assert got[fp.IDENTITY_NAMES.index("d_accel_band_mid_cdb")] == -20
    for j, name in enumerate(fp.IDENTITY_NAMES):
        assert got[j] == full[INPUT_FEATURES.index(name)]


def test_gallery__rows_equal_pairwise_deltas_and_identify_picks_the_nearest() -> None:
    rng = np.random.default_rng(5)
    baselines = {}
    for i in range(6):
        baselines[f"d{i}"] = _fp(
            accel_norm_ug=int(rng.integers(980_000, 1_020_000)),
            gyro_bias_x_udps=int(rng.integers(-900_000, 900_000)),
            gyro_bias_z_udps=int(rng.integers(-900_000, 900_000)),
            accel_noise_ug=int(rng.integers(1_500, 3_000)),
            rate_ppb=int(rng.integers(-3_000_000, 3_000_000)),
            tc_rate_ppb_per_c=int(rng.integers(-10_000, 10_000)),
            tc_gyro_x_udps_per_c=int(rng.integers(-20_000, 20_000)),
            temp_mc=int(rng.integers(20_000, 30_000)),
        )
    scales = fp.IdentityScales((20_000.0, 10_000.0, 10_000.0, 10_000.0, *(0.04,) * 2,
                                *(80.0,) * 4, 8_000.0))  # fmt: skip
    gallery = fp.Gallery.of(baselines, scales)
    probe = replace(baselines["d3"], gyro_bias_x_udps=baselines["d3"].gyro_bias_x_udps + 9_000)
    for i, name in enumerate(gallery.devices):
        assert np.allclose(gallery.deltas(probe)[i], fp.identity_deltas(probe, baselines[name]))
    found = gallery.identify(probe)
    assert found.device == "d3"
    assert found.distance == pytest.approx(math.log1p(0.81))
    assert found.margin > 10


def test_gallery__needs_two_baselines() -> None:
    with pytest.raises(fp.FingerprintError, match="two or more"):
        fp.Gallery.of({"a": _fp()}, UNIT)


def test_fit_scales__robust_sd_about_zero() -> None:
    col = np.array([-2.0, -1.0, 0.0, 1.0, 2.0, 1000.0] * 3)  # one wild session per six
    deltas = np.tile(col[:, None], (1, len(fp.IDENTITY_FEATURES)))
    scales = fp.fit_scales(deltas)
    # |col| sorted: 0,0,0,1,1,1,1,1,1,2,2,2,2,2,2,1000x3; median of 18 values is 1.5.
    assert scales.scales[0] == pytest.approx(fp.MAD_TO_SD * 1.5)


@pytest.mark.parametrize(
    ("deltas", "match"),
    [
        (np.ones((5, len(fp.IDENTITY_FEATURES))), "10 or more"),
        (np.ones((20, 3)), "10 or more"),
        (np.zeros((20, len(fp.IDENTITY_FEATURES))), "no spread"),
    ],
)
def test_fit_scales__bad_sample(deltas: np.ndarray, match: str) -> None:
    with pytest.raises(fp.FingerprintError, match=match):
        fp.fit_scales(deltas)


@pytest.mark.parametrize("scales", [(1.0,), (0.0,) * 11, (float("nan"),) * 11, (1,) * 11])
def test_identity_scales__invalid(scales: tuple[float, ...]) -> None:
    with pytest.raises(fp.FingerprintError):
        fp.IdentityScales(scales)


def test_drift__running_mean_and_flag() -> None:
    policy = fp.DriftPolicy(weight=0.5, limit=10.0, min_reports=3)
    d = fp.Drift().update(4.0, policy)
    assert (d.mean, d.reports) == (4.0, 1)
    d = d.update(20.0, policy)  # 4 + 0.5 * 16
    assert (d.mean, d.reports) == (12.0, 2)
    assert not d.drifting(policy)  # too few reports yet
    d3 = d.update(12.0, policy)
    assert d3.drifting(policy)
    assert d.reports == 2  # update returned a new value
    assert not d3.update(0.0, policy).update(0.0, policy).drifting(policy)  # 12 -> 6 -> 3


@pytest.mark.parametrize("dist", [-1.0, float("nan"), float("inf")])
def test_drift__bad_distance(dist: float) -> None:
    with pytest.raises(fp.FingerprintError, match="finite"):
        fp.Drift().update(dist, fp.DriftPolicy())


@pytest.mark.parametrize(
    "kwargs", [{"weight": 0.0}, {"weight": 1.5}, {"limit": -1.0}, {"min_reports": 0}]
)
def test_drift_policy__invalid(kwargs: dict[str, float]) -> None:
    with pytest.raises(fp.FingerprintError):
        fp.DriftPolicy(**kwargs)  # type: ignore[arg-type]


def test_evaluate__quick_identifies_and_flags_aged_boards() -> None:
    result = sig_fingerprint.evaluate(seed=2, quick=True)
    # 100 boards, 200 sessions: the full run (1,000 boards) measures 99.5 % or more.
    assert result["top1"] >= 0.99
    assert result["own_distance_p50_p99"][1] < result["nearest_other_distance_p1_p50"][0] * 2
    assert result["drift_false_alarms"] == 0
    assert result["drift_aged_flagged"] >= 8


def test_gallery_distances__over_a_subset_of_measures() -> None:
    a, b = _fp(gyro_bias_x_udps=0), _fp(gyro_bias_x_udps=3)
    gallery = fp.Gallery.of({"a": a, "b": b}, UNIT)
    probe = _fp(gyro_bias_x_udps=1, accel_noise_ug=2_000)
    assert gallery.distances(probe).tolist() == pytest.approx([math.log(2), math.log(5)])
    # Over the accelerometer's measures alone the two boards are the same.
    accel = gallery.distances(probe, sig_fingerprint.ACCEL_ONLY)
    assert accel.tolist() == [0.0, 0.0]
    with pytest.raises(fp.FingerprintError, match="measures"):
        gallery.distances(probe, ("d_temp_c",))
    with pytest.raises(fp.FingerprintError, match="measures"):
        gallery.distances(probe, ())


def test_parse__is_from_wire_and_shares_one_value_per_content() -> None:
    wire = _fp(gyro_bias_x_udps=5_000, jitter_ns=41_000).to_wire()
    parsed = fp.parse(wire)
    assert parsed == Fingerprint.from_wire(wire)
    assert fp.parse(dict(wire)) is parsed  # an equal copy: the remembered value
    assert fp.parse({**wire, 13: 41_001}).jitter_ns == 41_001  # other content, another value


@pytest.mark.parametrize(
    "change",
    [
        lambda w: {**w, 5: True},  # True == 1, but a bool is not a fixed-point integer
        lambda w: {k: v for k, v in w.items() if k != 7},  # a key missing
        lambda w: {**w, 24: 0},  # an unknown key
        lambda w: dict(reversed(w.items())),  # keys out of order: from_wire judges, accepts
    ],
)
def test_parse__judges_what_it_cannot_remember_as_from_wire_does(change: object) -> None:
    wire = change(_fp(gyro_noise_udps=1).to_wire())  # type: ignore[operator]
    try:
        expected: object = Fingerprint.from_wire(wire)
    except Exception as exc:  # from_wire refuses it: parse must refuse it the same way
        with pytest.raises(type(exc)):
            fp.parse(wire)
        return
    assert fp.parse(wire) == expected


def test_deltas__are_raw_deltas_and_read_only() -> None:
    current, baseline = _fp(gyro_bias_x_udps=5_100, temp_mc=26_000), _fp(gyro_bias_x_udps=5_000)
    got = fp.deltas(current, baseline)
    assert np.array_equal(got, raw_deltas(current, baseline))
    with pytest.raises(ValueError):
        got[0] = 1.0  # shared between callers: nobody may change it

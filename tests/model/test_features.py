"""Fingerprints, their wire form, enrollment and the model input vector."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent import features as f
from agent.features import FeatureError, Fingerprint
from agent.simulator import DEVICE_KINDS, SimDevice
from protocol import messages as m


def _fp(**changes: int) -> Fingerprint:
    base = dict.fromkeys(f.FINGERPRINT_FIELDS, 0)
    base.update(changes)
    return Fingerprint(**base)


def test_fingerprint_wire_round_trip_and_report_field() -> None:
    fp = f.extract(SimDevice(7, "phone").capture(0))
    wire = fp.to_wire()
    assert sorted(wire) == list(range(24))
    assert Fingerprint.from_wire(wire) == fp
    # the signed report and the enrollment accept it as their IntMap fields
    report = m.Report(
        sender="d-1",
        seq=1,
        boot=1,
        ts_ms=1,
        model_id="risk-v1",
        model_sha256=bytes(32),
        risk_pm=0,
        features=b"\x00",
        fingerprint=wire,
        mono_ms=1,
    )
    assert m.decode(m.encode(report)).fingerprint == wire  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "wire",
    [
        {i: 0 for i in range(23)},  # key 23 missing
        {**{i: 0 for i in range(24)}, 24: 0},  # unknown key
        {**{i: 0 for i in range(24)}, 3: 2**63},  # out of int64
        {**{i: 0 for i in range(24)}, 3: 1.5},  # not an int
        {**{i: 0 for i in range(24)}, 20: -1},  # negative tap interval
        {**{i: 0 for i in range(24)}, 13: -1},  # negative jitter
    ],
)
def test_fingerprint_from_wire__invalid(wire: dict[int, int]) -> None:
    with pytest.raises(FeatureError):
        Fingerprint.from_wire(wire)


def test_capture__invalid() -> None:
    good = SimDevice(1, "fridge").capture(0)
    with pytest.raises(FeatureError, match="int16"):
        dataclasses.replace(good, imu_raw=good.imu_raw.astype(np.int32))
    with pytest.raises(FeatureError, match="increasing"):
        dataclasses.replace(good, imu_ts_us=good.imu_ts_us[::-1].copy())
    with pytest.raises(FeatureError, match="temp_mc"):
        dataclasses.replace(good, temp_mc=25.0)  # type: ignore[arg-type]
    with pytest.raises(FeatureError, match="intervals"):
        dataclasses.replace(good, tap_holds_ms=np.array([50, 60], dtype=np.int32))


@pytest.mark.parametrize("kind", DEVICE_KINDS)
def test_every_kind_gives_a_valid_vector_of_the_same_length(kind: str) -> None:
    device = SimDevice(11, kind)
    baseline = f.enroll([f.extract(c) for c in device.enrollment()])
    current = f.extract(device.capture(3))
    unit = f.Normalisation(names=f.INPUT_FEATURES, scales=(1.0,) * f.N_INPUTS)
    vector = f.model_input(current, baseline, unit)
    assert vector.dtype == np.float32 and vector.shape == (f.N_INPUTS,) and f.N_INPUTS <= 64
    assert np.all(np.abs(vector) <= f.CLIP)
    behaviour = vector[f.INPUT_FEATURES.index("has_touch") :]
    if kind in ("fridge", "ev"):
        # no touch screen: the fixed neutral block
        assert not current.has_touch and current.iti_median_us == 0
        assert not np.any(behaviour)
    else:
        assert current.has_touch and behaviour[0] > 0


def test_enroll_fits_the_temperature_coefficient() -> None:
    # gyro x bias = 1000 + 40 udps per C; accel norm flat; four sessions over 12 C
    sessions = [
        _fp(temp_mc=t, gyro_bias_x_udps=1000 + 40 * (t - 20_000) // 1000, accel_norm_ug=10**6)
        for t in (20_000, 24_000, 28_000, 32_000)
    ]
    base = f.enroll(sessions)
    assert base.temp_mc == 26_000
    assert base.tc_gyro_x_udps_per_c == 40 and base.tc_accel_norm_ug_per_c == 0
    assert base.gyro_bias_x_udps == 1000 + 40 * 6
    # at 36 C the compensated delta of a device that follows its coefficient is 0
    now = _fp(temp_mc=36_000, gyro_bias_x_udps=1000 + 40 * 16, accel_norm_ug=10**6)
    assert f.raw_deltas(now, base)[f.INPUT_FEATURES.index("d_gyro_bias_x_udps")] == 0.0
    # too narrow a span: no slope is fitted
    narrow = f.enroll([_fp(temp_mc=t) for t in (20_000, 21_000, 22_000)])
    assert narrow.tc_gyro_x_udps_per_c == 0


def test_normalisation_refuses_another_feature_layout() -> None:
    names = f.INPUT_FEATURES[::-1]
    with pytest.raises(FeatureError, match="layout"):
        f.Normalisation(names=names, scales=(1.0,) * len(names))
    with pytest.raises(FeatureError, match="positive"):
        f.Normalisation(names=f.INPUT_FEATURES, scales=(0.0,) * f.N_INPUTS)


_INT64 = st.integers(min_value=f.INT64_MIN, max_value=f.INT64_MAX)


@given(st.lists(_INT64, min_size=24, max_size=24), st.integers(0, 2**40), st.integers(0, 2**40))
def test_fingerprint_wire_round_trip__any_values(values: list[int], iti: int, hold: int) -> None:
    values[20], values[22] = iti, hold  # tap medians are never negative
    for key in (4, 5, 13):  # nor are noise rms and jitter
        values[key] = abs(values[key]) if values[key] > f.INT64_MIN else 0
    wire = dict(enumerate(values))
    fp = Fingerprint.from_wire(wire)
    assert fp.to_wire() == wire
    assert fp.has_touch == (iti > 0)

"""Automated approval: the rules in order, the limit and rate formulas, reasons on every decline."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud_bridge.pool.approval import (
    DeviceSignals,
    Outcome,
    approved_limit_fen,
    approved_rate_bps,
    decide_application,
)
from cloud_bridge.pool.policy import Policy
from cloud_bridge.pool.scorecard import Score
from tests.pool.support import DAY, T0

POLICY = Policy()  # approve PD <= 1500 bps, decline >= 3500, 100 bps credit per trusted device
OLD = T0 - 60 * DAY  # a device enrolled two months ago: trusted (30 days)
NEW = T0 - DAY
REASONS = ("duration_in_month", "purpose", "savings_account_and_bonds", "job", "housing")


def score(pd_bps: int, missing: tuple[str, ...] = ()) -> Score:
    return Score(points=500, pd_bps=pd_bps, reasons=REASONS, missing=missing)


@pytest.mark.parametrize(
    ("pd", "devices", "outcome", "first"),
    [
        (500, DeviceSignals((NEW,)), Outcome.APPROVE, "duration_in_month"),
        (1500, DeviceSignals((NEW,)), Outcome.APPROVE, "duration_in_month"),
        (1501, DeviceSignals((NEW,)), Outcome.REFER, "pd_between_bands"),
        (1600, DeviceSignals((OLD,)), Outcome.APPROVE, "duration_in_month"),  # 1600 - 100
        (1800, DeviceSignals((OLD, OLD, OLD)), Outcome.REFER, "pd_between_bands"),  # 2 count
        (1700, DeviceSignals((OLD, OLD, OLD)), Outcome.APPROVE, "duration_in_month"),
        (3499, DeviceSignals((NEW,)), Outcome.REFER, "pd_between_bands"),
        (3500, DeviceSignals((NEW,)), Outcome.DECLINE, "high_pd"),
        (500, DeviceSignals(()), Outcome.REFER, "no_enrolled_device"),
        (500, DeviceSignals((NEW,), revoked=1), Outcome.REFER, "device_revoked"),
        (500, DeviceSignals((NEW,), risk_freezes=1), Outcome.REFER, "risk_history"),
        (500, DeviceSignals((NEW,), risk_freezes=3), Outcome.DECLINE, "risk_history"),
        (4000, DeviceSignals(()), Outcome.DECLINE, "high_pd"),  # a decline outranks a refer
    ],
)
def test_rules(pd: int, devices: DeviceSignals, outcome: Outcome, first: str) -> None:
    d = decide_application(score(pd), devices, T0, POLICY)
    assert d.outcome is outcome
    assert d.reasons[0] == first
    assert d.reasons[-4:] == REASONS[:4]  # the scorecard's top reasons, ranked, after the rules
    assert (d.limit_fen > 0) is (outcome is Outcome.APPROVE)


def test_too_many_blank_attributes_refer() -> None:
    d = decide_application(
        score(500, ("job", "housing", "age_in_years")), DeviceSignals((NEW,)), T0, POLICY
    )
    assert (d.outcome, d.reasons[0]) == (Outcome.REFER, "incomplete_application")
    two = decide_application(score(500, ("job", "housing")), DeviceSignals((NEW,)), T0, POLICY)
    assert two.outcome is Outcome.APPROVE


def test_limit_and_rate_by_hand() -> None:
    # limit: 10,000 + (5,000,000 - 10,000) * (1500 - 600) / 1500 = 3,004,000, a multiple of 10,000
    d = decide_application(score(600), DeviceSignals((NEW,)), T0, POLICY)
    assert (d.limit_fen, d.rate_bps) == (3_000_000, 900 + 60 * 6)
    assert approved_limit_fen(0, POLICY) == 5_000_000
    assert approved_limit_fen(1_500, POLICY) == 10_000
    assert approved_rate_bps(1_500, POLICY) == 1_800
    assert approved_rate_bps(10_000, POLICY) == 2_400  # capped


@given(
    pd=st.integers(0, 10_000),
    enrolled=st.lists(st.integers(T0 - 400 * DAY, T0), max_size=4),
    revoked=st.integers(0, 2),
    freezes=st.integers(0, 4),
    missing=st.integers(0, 4),
)
def test_every_decision_is_consistent(
    pd: int, enrolled: list[int], revoked: int, freezes: int, missing: int
) -> None:
    devices = DeviceSignals(tuple(enrolled), revoked, freezes)
    d = decide_application(score(pd, REASONS[:missing]), devices, T0, POLICY)
    assert d.reasons  # every decision, every decline in particular, says why
    if d.outcome is Outcome.APPROVE:
        assert POLICY.limits.min_fen <= d.limit_fen <= POLICY.approval.max_limit_fen
        assert d.limit_fen % POLICY.approval.limit_step_fen == 0
        assert 0 < d.rate_bps <= POLICY.approval.max_rate_bps
        assert d.adjusted_pd_bps <= POLICY.approval.approve_max_pd_bps
    else:
        assert (d.limit_fen, d.rate_bps) == (0, 0)
        assert d.reasons[0] not in REASONS  # a rule decided, and it comes first
    assert d.adjusted_pd_bps <= d.pd_bps


@given(a=st.integers(0, 1500), b=st.integers(0, 1500))
def test_a_riskier_applicant_never_gets_a_higher_limit_or_a_lower_rate(a: int, b: int) -> None:
    lo, hi = sorted((a, b))
    assert approved_limit_fen(lo, POLICY) >= approved_limit_fen(hi, POLICY)
    assert approved_rate_bps(lo, POLICY) <= approved_rate_bps(hi, POLICY)


def test_device_signals_refuse_negative_counts() -> None:
    with pytest.raises(ValueError, match="revoked"):
        DeviceSignals((), revoked=-1)

"""Micro-merchant limits: the pure review, and the engine's reports and scheduled reviews."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud_bridge.pool import commands as c
from cloud_bridge.pool.engine import decide
from cloud_bridge.pool.ledger import unbalanced
from cloud_bridge.pool.merchant import next_review_after, review
from cloud_bridge.pool.policy import Merchant, Policy
from cloud_bridge.pool.results import Result
from cloud_bridge.pool.state import DayTurnover, PoolState
from tests.pool.support import DAY, T0

M = Merchant()  # 30-day window, 200 %, weekly review, 90 days to full history
TODAY = T0 // DAY
POLICY = Policy()


def days(values: list[int], end: int = TODAY) -> list[DayTurnover]:
    """`values` as the turnover of the days just before `end`, oldest first."""
    return [DayTurnover(end - len(values) + i, v) for i, v in enumerate(values)]


def test_steady_turnover_with_a_full_history_gets_200_percent() -> None:
    r = review(days([100_000] * 30), TODAY - 365, TODAY, M)
    assert (r.monthly_fen, r.cv_bps, r.history_factor_bps) == (3_000_000, 0, 10_000)
    assert r.target_fen == 6_000_000


def test_a_short_history_gets_a_proportional_share() -> None:
    r = review(days([100_000] * 30), TODAY - 45, TODAY, M)  # 45 of 90 days
    assert r.target_fen == 3_000_000


def test_volatility_cuts_the_limit_by_half_its_coefficient_of_variation() -> None:
    # alternating 0 and 200,000: mean 100,000, std 100,000, CV 1 -> factor 1 - 0.5 = 0.5
    r = review(days([0, 200_000] * 15), TODAY - 365, TODAY, M)
    assert (r.cv_bps, r.volatility_factor_bps, r.target_fen) == (10_000, 5_000, 3_000_000)
    # one busy day in thirty: CV = sqrt(29) = 5.385..., the cut stops at the 25 % floor
    spiky = review(days([0] * 29 + [3_000_000]), TODAY - 365, TODAY, M)
    assert (spiky.cv_bps, spiky.volatility_factor_bps) == (53_851, 2_500)
    assert spiky.target_fen == 1_500_000


def test_days_outside_the_window_and_unreported_days_count_as_nothing() -> None:
    old = [DayTurnover(TODAY - 31, 9_000_000)]
    r = review([*old, *days([300_000] * 10)], TODAY - 365, TODAY, M)
    assert (r.monthly_fen, r.reported_days) == (3_000_000, 10)
    assert review([], TODAY - 365, TODAY, M).target_fen == 0


def test_a_young_merchant_is_judged_on_the_days_since_its_first_report() -> None:
    r = review(days([100_000] * 10), TODAY - 10, TODAY, M)  # 10 steady days, then the review
    assert (r.monthly_fen, r.cv_bps) == (3_000_000, 0)
    assert r.history_factor_bps == 1_111  # 10/90, in whole basis points (rounded down)
    assert r.target_fen == 6_000_000 * 1_111 // 10_000


@given(
    values=st.lists(st.integers(0, 10**9), min_size=0, max_size=30),
    history=st.integers(0, 400),
    policy=st.builds(
        Merchant,
        window_days=st.integers(1, 60),
        max_turnover_bps=st.integers(0, 30_000),
        full_history_days=st.integers(1, 200),
        volatility_penalty_bps=st.integers(0, 10_000),
        min_volatility_factor_bps=st.integers(0, 10_000),
    ),
)
def test_the_limit_never_exceeds_the_policy_share_of_the_window(
    values: list[int], history: int, policy: Merchant
) -> None:
    r = review(days(values), TODAY - history, TODAY, policy)
    span = min(policy.window_days, history)
    window = sum(values[-span:]) if span else 0
    assert r.monthly_fen == (window * policy.window_days // span if span else 0)
    assert 0 <= r.target_fen <= r.monthly_fen * policy.max_turnover_bps // 10_000
    every_day = days([max(values, default=0)] * policy.window_days)  # the same every day
    steady = review(every_day, TODAY - history, TODAY, policy)
    assert steady.cv_bps == 0
    older = review(every_day, TODAY - history - 30, TODAY, policy)
    assert older.target_fen >= steady.target_fen  # more of the same history never lowers it


@given(due=st.integers(0, 10**6), now=st.integers(0, 10**6), period=st.integers(1, 1000))
def test_reviews_stay_on_their_grid(due: int, now: int, period: int) -> None:
    nxt = next_review_after(due, now, period)
    assert nxt > now or (now < due and nxt == due)
    assert (nxt - due) % period == 0 and nxt - period <= max(now, due - period)


# --- the engine ---------------------------------------------------------------------------


def step(state: PoolState | None, cmd: c.Command, at: int):
    d = decide(state, cmd, at, POLICY)
    assert unbalanced(d.postings or {}) == []
    return d


def merchant_pool(limit: int = 10_000) -> PoolState:
    s = step(None, c.OpenPool(user="m", key="o", limit_fen=limit), T0).state
    assert s is not None
    return s


def test_reports_then_a_weekly_review_follow_the_turnover() -> None:
    s = merchant_pool()
    for i in range(7):  # a week of 100,000 fen a day, reported each evening
        d = step(s, c.ReportTurnover(user="m", key=f"r{i}", day=TODAY + i, turnover_fen=100_000),
                 T0 + i * DAY)  # fmt: skip
        assert d.result is Result.OK and [e.kind for e in d.events] == ["turnover_reported"]
        s = d.state
    assert s.next_review_ms == T0 + 7 * DAY and s.first_turnover_day == TODAY
    d = step(s, c.Tick(user="m", key="t1"), T0 + 7 * DAY)
    kinds = [e.kind for e in d.events]
    assert kinds == ["merchant_reviewed", "limit_changed"]
    # 700,000 in 7 days is 3,000,000 a 30-day month; x 200 % x 7/90 (777 bps) of a full history
    assert d.events[0].data["monthly_fen"] == 3_000_000
    assert d.events[0].data["target_fen"] == 6_000_000 * 777 // 10_000 == 466_200
    assert d.state.limit_fen == 466_200 and d.events[1].data["why"] == "merchant_review"
    assert d.state.next_review_ms == T0 + 14 * DAY
    assert step(d.state, c.Tick(user="m", key="t2"), T0 + 8 * DAY).events == ()  # not due


def test_a_review_keeps_the_limit_above_what_is_used_and_a_frozen_pool_does_not_grow() -> None:
    s = merchant_pool(limit=500_000)
    s = step(s, c.ReportTurnover(user="m", key="r", day=TODAY, turnover_fen=1_000), T0).state
    s = step(s, c.Draw(user="m", key="d", amount_fen=300_000), T0).state
    d = step(s, c.Tick(user="m", key="t"), T0 + 7 * DAY)
    assert d.state.limit_fen == 300_000  # the target is tiny; usage is the floor
    frozen = step(d.state, c.Freeze(user="m", key="f"), T0 + 7 * DAY).state
    for i in range(30):
        busy = c.ReportTurnover(user="m", key=f"b{i}", day=TODAY + 7 + i, turnover_fen=1_000_000)
        frozen = step(frozen, busy, T0 + (7 + i) * DAY).state
    assert frozen.limit_fen == 300_000  # reviews ran, but a frozen pool's limit does not rise


@pytest.mark.parametrize(
    ("day", "fen", "result"),
    [
        (TODAY + 1, 1, Result.TURNOVER_DAY_OUT_OF_WINDOW),
        (TODAY - 31, 1, Result.TURNOVER_DAY_OUT_OF_WINDOW),
        (TODAY - 1, 1, Result.TURNOVER_ALREADY_REPORTED),
        (TODAY, 100_000_001, Result.IMPLAUSIBLE_TURNOVER),
    ],
)
def test_bad_reports_are_refused_and_change_nothing(day: int, fen: int, result: Result) -> None:
    s = merchant_pool()
    s = step(s, c.ReportTurnover(user="m", key="r0", day=TODAY - 1, turnover_fen=5), T0).state
    d = step(s, c.ReportTurnover(user="m", key="r1", day=day, turnover_fen=fen), T0)
    assert d.result is result and d.state == s and d.events == ()


def test_merchant_fields_survive_json_and_a_plain_pool_keeps_its_old_json() -> None:
    s = merchant_pool()
    assert {"turnover", "first_turnover_day", "next_review_ms"} & set(s.to_json()) == set()
    s = step(s, c.ReportTurnover(user="m", key="r", day=TODAY, turnover_fen=7), T0).state
    assert PoolState.from_json(s.to_json()) == s
    assert s.to_json()["turnover"] == [[TODAY, 7]]


def test_turnover_fields_are_validated() -> None:
    with pytest.raises(ValueError, match="day"):
        c.ReportTurnover(user="m", key="k", day=-1, turnover_fen=1)
    with pytest.raises(ValueError):
        c.ReportTurnover(user="m", key="k", day=1, turnover_fen=1.5)  # type: ignore[arg-type]

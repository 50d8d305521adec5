"""Trigger limits in the pure engine, rule by rule, with the default policy: the attacks of a
cloned or compromised device key (issue 12), and the edges of each window.

Every refusal must leave the pool exactly as it was: no event, no posting, no new version.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from cloud_bridge.pool import commands as c
from cloud_bridge.pool.engine import Decision, decide
from cloud_bridge.pool.errors import InvalidCommand
from cloud_bridge.pool.ledger import unbalanced
from cloud_bridge.pool.policy import Policy
from cloud_bridge.pool.results import Result
from cloud_bridge.pool.state import MileageClaim, PoolState, Spend
from tests.pool.support import DAY, T0

DEFAULT = Policy()  # 3 emergency draws and 50,000 yuan a day; boosts a day apart, 2 a week
HOUR = 3_600_000
_n = iter(range(10**9))


def run(state: PoolState | None, cmd: type[c.Command], at: int, **kw: object) -> Decision:
    decision = decide(state, cmd(user="u", key=f"k{next(_n)}", **kw), at, DEFAULT)  # type: ignore[arg-type]
    assert not unbalanced(decision.postings or {})
    if not decision.result.ok:  # a refusal changes nothing
        assert decision.state == state and decision.events == () and not decision.postings
    return decision


def opened(limit: int = 5_000_000) -> PoolState:
    state = run(None, c.OpenPool, T0, limit_fen=limit).state
    assert state is not None
    return state


def emergency(state: PoolState, at: int, amount: int, up_to: bool = False) -> Decision:
    extra = {"up_to": True} if up_to else {}  # a plain draw is built as before `up_to` existed
    return run(state, c.Draw, at, amount_fen=amount, emergency=c.Emergency.ILLNESS, **extra)


# ---- emergency draws -----------------------------------------------------------------------


def test_twenty_emergency_draws_in_one_second_only_the_budget_succeeds() -> None:
    s = opened()
    results = []
    for i in range(20):
        d = emergency(s, T0 + i * 50, 10_000)
        results.append(d.result)
        s = d.state
    assert results == [Result.OK] * 3 + [Result.TOO_MANY_EMERGENCIES] * 17
    assert s.outstanding_fen == 30_000 and s.version == 4  # opened + three draws


def test_the_daily_amount_is_a_budget_too() -> None:
    s = emergency(opened(), T0, 2_000_000).state
    s = emergency(s, T0 + 1, 2_000_000).state
    assert emergency(s, T0 + 2, 1_000_001).result is Result.EXCEEDS_EMERGENCY_BUDGET
    last = emergency(s, T0 + 3, 1_000_000)  # exactly what is left of 5,000,000
    assert last.result is Result.OK and last.state.outstanding_fen == 5_000_000


def test_ordinary_draws_neither_count_nor_are_counted() -> None:
    s = opened()
    for i in range(5):
        s = run(s, c.Draw, T0 + i, amount_fen=2_000_000 if i == 0 else 100).state
    assert emergency(s, T0 + 9, 2_000_000).result is Result.OK


def test_the_window_is_a_rolling_24_hours() -> None:
    s = opened()
    for i in range(3):
        s = emergency(s, T0 + i * HOUR, 10_000).state
    assert emergency(s, T0 + DAY - 1, 10_000).result is Result.TOO_MANY_EMERGENCIES
    d = emergency(s, T0 + DAY, 10_000)  # the first left the window: one more, not three
    assert d.result is Result.OK
    assert emergency(d.state, T0 + DAY + 1, 10_000).result is Result.TOO_MANY_EMERGENCIES
    # The state keeps only what the window still counts.
    assert d.state.emergencies == (
        Spend(T0 + HOUR, 10_000),
        Spend(T0 + 2 * HOUR, 10_000),
        Spend(T0 + DAY, 10_000),
    )


def test_the_budget_outlives_closing_and_reopening_the_pool() -> None:
    s = opened()
    for i in range(3):
        s = emergency(s, T0 + i, 100).state
    s = run(s, c.Repay, T0 + 5, amount_fen=300).state
    s = run(s, c.ClosePool, T0 + 6).state
    s = run(s, c.OpenPool, T0 + 7, limit_fen=100_000).state
    assert emergency(s, T0 + 8, 100).result is Result.TOO_MANY_EMERGENCIES


# ---- an emergency without an amount: what the policy allows -----------------------------------


def test_up_to_on_a_small_pool_draws_the_available_credit() -> None:
    s = run(opened(1_000_000), c.Draw, T0, amount_fen=400_000).state
    assert emergency(s, T0 + 1, 2_000_000).result is Result.EXCEEDS_CREDIT  # asked exactly
    d = emergency(s, T0 + 1, 2_000_000, up_to=True)
    assert d.result is Result.OK and d.state.available_fen == 0
    (event,) = d.events
    assert (event.data["amount_fen"], event.data["asked_fen"]) == (600_000, 2_000_000)


def test_up_to_is_capped_by_what_the_day_left() -> None:
    s = emergency(opened(), T0, 4_500_000).state
    d = emergency(s, T0 + 1, 2_000_000, up_to=True)
    assert d.result is Result.OK and d.events[0].data["amount_fen"] == 500_000


def test_up_to_takes_the_whole_amount_when_it_fits() -> None:
    d = emergency(opened(), T0, 2_000_000, up_to=True)
    assert d.result is Result.OK and d.state.outstanding_fen == 2_000_000


def test_up_to_below_the_smallest_draw_is_refused_with_what_is_short() -> None:
    full = run(opened(100_000), c.Draw, T0, amount_fen=99_950).state  # 50 fen left
    assert emergency(full, T0 + 1, 2_000_000, up_to=True).result is Result.EXCEEDS_CREDIT
    spent = emergency(opened(), T0, 4_999_950).state  # 50 fen of the day's budget left
    d = emergency(spent, T0 + 1, 2_000_000, up_to=True)
    assert d.result is Result.EXCEEDS_EMERGENCY_BUDGET


def test_a_frozen_pool_refuses_before_any_budget() -> None:
    s = run(opened(), c.Freeze, T0).state
    assert emergency(s, T0, 10_000, up_to=True).result is Result.POOL_FROZEN


# ---- health boosts -----------------------------------------------------------------------------


def test_ten_health_goals_in_a_burst_raise_the_limit_once() -> None:
    s = opened(1_000_000)
    results = []
    for i in range(10):
        d = run(s, c.HealthGoalMet, T0 + i * 100)
        results.append(d.result)
        s = d.state
    assert results == [Result.OK] + [Result.BOOST_COOLDOWN] * 9
    assert s.limit_fen == 1_050_000


def test_boosts_one_per_cooldown_and_two_a_week() -> None:
    s = run(opened(1_000_000), c.HealthGoalMet, T0).state
    assert run(s, c.HealthGoalMet, T0 + DAY - 1).result is Result.BOOST_COOLDOWN
    s = run(s, c.HealthGoalMet, T0 + DAY).state
    assert s.limit_fen == 1_100_000
    assert run(s, c.HealthGoalMet, T0 + 2 * DAY).result is Result.TOO_MANY_BOOSTS
    assert run(s, c.HealthGoalMet, T0 + 7 * DAY - 1).result is Result.TOO_MANY_BOOSTS
    d = run(s, c.HealthGoalMet, T0 + 7 * DAY)  # the first left the 7-day window
    assert d.result is Result.OK and d.state.boosts_ms == (T0 + DAY, T0 + 7 * DAY)


def test_a_capped_pool_says_so_rather_than_wait() -> None:
    policy_cap = DEFAULT.health.max_boost_fen // DEFAULT.health.boost_fen
    s, t = opened(1_000_000), T0
    for _ in range(policy_cap):
        t += 4 * DAY
        s = run(s, c.HealthGoalMet, t).state
    assert run(s, c.HealthGoalMet, t).result is Result.BOOST_CAP_REACHED


# ---- mileage ---------------------------------------------------------------------------------


def test_a_million_km_in_thirty_days_is_refused() -> None:
    d = run(opened(), c.ReportMileage, T0, km_per_month=1_000_000)
    assert d.result is Result.IMPLAUSIBLE_MILEAGE


def test_the_ceiling_is_thirty_days_at_the_daily_bound() -> None:
    assert run(opened(), c.ReportMileage, T0, km_per_month=45_001).result is (
        Result.IMPLAUSIBLE_MILEAGE
    )
    d = run(opened(), c.ReportMileage, T0, km_per_month=45_000)
    assert d.result is Result.OK and d.state.rate_bps == 1500
    assert d.state.mileage == MileageClaim(45_000, T0)


def test_a_rise_is_bounded_by_the_time_since_the_last_report() -> None:
    s = run(opened(), c.ReportMileage, T0, km_per_month=500).state
    # 1,500 km a day: 2,500 km more needs 40 hours.
    assert run(s, c.ReportMileage, T0 + HOUR, km_per_month=3_000).result is (
        Result.IMPLAUSIBLE_MILEAGE
    )
    assert run(s, c.ReportMileage, T0 + DAY, km_per_month=2_001).result is (
        Result.IMPLAUSIBLE_MILEAGE
    )
    assert run(s, c.ReportMileage, T0 + DAY, km_per_month=2_000).result is Result.OK
    d = run(s, c.ReportMileage, T0 + 40 * HOUR, km_per_month=3_000)
    assert d.result is Result.OK and d.state.rate_bps == 1500
    assert [e.kind for e in d.events] == ["mileage_reported", "rate_changed"]


def test_a_fall_is_always_plausible_and_becomes_the_new_reference() -> None:
    s = run(opened(), c.ReportMileage, T0, km_per_month=3_000).state
    s = run(s, c.ReportMileage, T0 + 1, km_per_month=0).state
    assert s.rate_bps == 1800
    assert run(s, c.ReportMileage, T0 + HOUR, km_per_month=3_000).result is (
        Result.IMPLAUSIBLE_MILEAGE
    )


def test_a_refused_claim_is_not_the_reference() -> None:
    s = run(opened(), c.ReportMileage, T0, km_per_month=100).state
    assert run(s, c.ReportMileage, T0 + DAY, km_per_month=40_000).result is (
        Result.IMPLAUSIBLE_MILEAGE
    )
    # Judged against the 100 km of T0, not the refused 40,000.
    assert run(s, c.ReportMileage, T0 + DAY, km_per_month=1_600).result is Result.OK


# ---- values ----------------------------------------------------------------------------------


def test_the_windows_survive_the_stored_json_and_old_rows_have_none() -> None:
    s = emergency(opened(), T0, 10_000).state
    s = run(s, c.HealthGoalMet, T0).state
    s = run(s, c.ReportMileage, T0, km_per_month=700).state
    again = PoolState.from_json(json.loads(json.dumps(s.to_json())))
    assert again == s
    assert again.emergencies == (Spend(T0, 10_000),) and again.boosts_ms == (T0,)
    old = {k: v for k, v in s.to_json().items() if k not in ("emergencies", "boosts_ms", "mileage")}
    before = PoolState.from_json(old)
    assert (before.emergencies, before.boosts_ms, before.mileage) == ((), (), None)


def test_a_draw_without_up_to_keeps_its_recorded_fingerprint() -> None:
    # What a draw hashed to before `up_to` existed: a retry of it must still match.
    old = {
        "kind": "draw",
        "user": "u",
        "key": "k",
        "amount_fen": 500,
        "installments": 0,
        "emergency": "illness",
    }
    text = json.dumps(old, sort_keys=True, separators=(",", ":"))
    draw = c.Draw(user="u", key="k", amount_fen=500, emergency=c.Emergency.ILLNESS)
    assert draw.fingerprint() == hashlib.sha256(text.encode()).hexdigest()
    up_to = dataclasses.replace(draw, up_to=True)
    assert up_to.fingerprint() != draw.fingerprint()
    assert c.from_json(up_to.to_json()) == up_to and c.from_json(draw.to_json()) == draw


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"up_to": 1}, "up_to must be true or false"),
        ({"up_to": True, "installments": 12}, "installment"),
    ],
)
def test_bad_up_to_cannot_be_built(fields: dict[str, object], words: str) -> None:
    with pytest.raises(InvalidCommand, match=words):
        c.Draw(user="u", key="k", amount_fen=500, **fields)  # type: ignore[arg-type]

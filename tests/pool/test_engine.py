"""The pure engine, rule by rule: interest, statements, raises, plans, holds, reserve, refusals."""

from __future__ import annotations

import dataclasses
import random

import pytest

from cloud_bridge.pool import commands as c
from cloud_bridge.pool.engine import decide
from cloud_bridge.pool.ledger import Account, unbalanced
from cloud_bridge.pool.policy import Emergencies, Policy
from cloud_bridge.pool.results import Result
from cloud_bridge.pool.state import PoolState, Status
from tests.pool.support import DAY, T0, TEST_POLICY

DEFAULT = Policy()
_n = iter(range(10**9))


def run(
    state: PoolState | None, cmd: type[c.Command], at: int, policy: Policy = DEFAULT, **kw: object
):
    decision = decide(state, cmd(user="u", key=f"k{next(_n)}", **kw), at, policy)  # type: ignore[arg-type]
    assert not unbalanced(decision.postings or {})
    return decision


def opened(limit: int = 1_000_000, policy: Policy = DEFAULT, **kw: object) -> PoolState:
    state = run(None, c.OpenPool, T0, policy, limit_fen=limit, **kw).state
    assert state is not None
    return state


def test_open_draw_repay_restores_available_credit() -> None:
    s = opened(100_000)
    s = run(s, c.Draw, T0, amount_fen=60_000).state
    assert (s.available_fen, s.outstanding_fen, s.version) == (40_000, 60_000, 2)
    s = run(s, c.Repay, T0, amount_fen=60_000).state
    assert (s.available_fen, s.outstanding_fen) == (100_000, 0)
    again = run(s, c.Draw, T0, amount_fen=100_000)
    assert again.result is Result.OK and again.state.available_fen == 0


def test_draw_posts_one_balanced_entry_in_both_books() -> None:
    d = run(opened(), c.Draw, T0, amount_fen=5_000)
    assert d.postings == {
        Account.AVAILABLE: -5_000,
        Account.DRAWN: 5_000,
        Account.PRINCIPAL: 5_000,
        Account.SETTLEMENT: -5_000,
    }


def test_interest_is_exact_and_independent_of_how_often_the_pool_is_touched() -> None:
    # 1,000,000 fen at 18 % for 365 days is exactly 180,000 fen, however the year is sliced.
    for seed in range(3):
        rng = random.Random(seed)
        s = run(opened(), c.Draw, T0, amount_fen=1_000_000).state
        t = T0
        while t < T0 + 365 * DAY:
            t = min(T0 + 365 * DAY, t + rng.randint(1, 40 * DAY))
            s = run(s, c.Tick, t).state if rng.random() < 0.5 else s
        s = run(s, c.ReportMileage, T0 + 365 * DAY, km_per_month=3_000).state  # forces a write
        assert s.interest_fen + s.accrued_fen == 180_000


def test_statement_bills_interest_and_sets_a_minimum_payment() -> None:
    s = run(opened(), c.Draw, T0, amount_fen=300_000).state
    d = run(s, c.Tick, T0 + 30 * DAY)
    (event,) = d.events
    interest = 300_000 * 1800 * 30 // (10_000 * 365)  # 30 days of 18 %: 4438.35 -> 4438 fen
    assert event.kind == "statement_closed" and event.data["interest_billed_fen"] == interest
    assert d.state.min_due_fen == interest + 30_000  # interest + 10 % of principal
    assert d.state.due_ms == T0 + 50 * DAY
    assert d.postings == {Account.INTEREST: interest, Account.INCOME: -interest}


def test_minimum_payment_floor_and_cap() -> None:
    s = run(opened(rate_bps=0), c.Draw, T0, amount_fen=20_000).state
    assert run(s, c.Tick, T0 + 30 * DAY).state.min_due_fen == 10_000  # the floor, not 2,000
    s = run(opened(rate_bps=0), c.Draw, T0, amount_fen=4_000).state
    assert run(s, c.Tick, T0 + 30 * DAY).state.min_due_fen == 4_000  # never above what is owed


def test_raise_after_six_cycles_in_good_standing_and_missed_payment_resets() -> None:
    s = opened(100_000)
    t = T0
    for cycle in range(1, 7):
        s = run(s, c.Draw, t + DAY, amount_fen=10_000).state
        t = T0 + cycle * 30 * DAY
        d = run(s, c.Tick, t)
        s = d.state
        if cycle < 6:
            assert [e.kind for e in d.events] == ["statement_closed"]
            assert s.on_time_cycles == cycle and s.limit_fen == 100_000
        else:  # the 6th statement ends the 6th cycle in good standing: raise by 20 %
            assert [e.kind for e in d.events] == ["limit_raised", "statement_closed"]
            assert s.limit_fen == 120_000 and s.on_time_cycles == 0
        s = run(s, c.Repay, t + 5 * DAY, amount_fen=s.due_left_fen).state
    assert s.on_time_cycles == 0
    # Miss one: the streak starts again and nothing is raised.
    d = run(s, c.Tick, t + 30 * DAY)
    assert [e.kind for e in d.events] == ["statement_closed"] and d.state.on_time_cycles == 1
    d = run(d.state, c.Tick, t + 60 * DAY)
    assert [e.kind for e in d.events] == ["payment_missed", "statement_closed"]
    assert d.state.on_time_cycles == 0


def test_a_user_who_never_borrows_is_raised_after_six_cycles() -> None:
    """Cycles with nothing owed are in good standing (issue 16 item 4): the raise comes at the
    6th statement, not never."""
    s = opened(100_000)
    kinds = []
    for cycle in range(1, 13):
        d = run(s, c.Tick, T0 + cycle * 30 * DAY)
        s = d.state
        kinds.append([e.kind for e in d.events])
    raised = [i + 1 for i, k in enumerate(kinds) if "limit_raised" in k]
    assert raised == [6, 12]
    assert s.limit_fen == 144_000  # 100,000 + 20 %, then + 20 % again


def test_payment_after_the_due_date_does_not_count_as_on_time() -> None:
    s = run(opened(), c.Draw, T0, amount_fen=50_000).state
    s = run(s, c.Tick, T0 + 30 * DAY).state
    s = run(s, c.Repay, T0 + 51 * DAY, amount_fen=s.due_left_fen).state  # due was day 50
    assert s.due_left_fen > 0
    assert run(s, c.Tick, T0 + 60 * DAY).events[0].kind == "payment_missed"


def test_installments_are_interest_free_and_billed_per_period() -> None:
    s = run(opened(), c.Draw, T0, amount_fen=600_000, installments=12).state
    assert (s.principal_fen, s.installment_fen, s.available_fen) == (0, 600_000, 400_000)
    d = run(s, c.Tick, T0 + 30 * DAY)
    assert d.events[0].data["installments_billed_fen"] == 50_000
    assert d.state.interest_fen == 0 and d.state.min_due_fen == 50_000
    paid = run(d.state, c.Repay, T0 + 31 * DAY, amount_fen=50_000).state
    assert paid.installment_fen == 550_000 and paid.available_fen == 450_000


@pytest.mark.parametrize(
    ("amount", "periods", "result"),
    [
        (499_999, 12, Result.INSTALLMENTS_NOT_ELIGIBLE),
        (500_000, 6, Result.INSTALLMENTS_NOT_ELIGIBLE),
    ],
)
def test_installments_need_the_policy_threshold_and_periods(
    amount: int, periods: int, result: Result
) -> None:
    assert run(opened(), c.Draw, T0, amount_fen=amount, installments=periods).result is result


def test_emergency_reserve_is_for_emergencies_only() -> None:
    policy = dataclasses.replace(DEFAULT, emergency=Emergencies(reserve_bps=1000))
    s = opened(100_000, policy)
    assert run(s, c.Draw, T0, policy, amount_fen=90_001).result is Result.EXCEEDS_CREDIT
    d = run(s, c.Draw, T0, policy, amount_fen=100_000, emergency=c.Emergency.ILLNESS)
    assert d.result is Result.OK
    assert d.events[0].data == {
        "amount_fen": 100_000,
        "emergency": "illness",
        "respond_within_ms": 15_000,
    }


def test_hold_expires_at_its_deadline_and_confirm_may_take_part() -> None:
    s = run(opened(100_000), c.PlaceHold, T0, hold_id="h", amount_fen=30_000, ttl_ms=1_000).state
    assert (s.available_fen, s.held_fen) == (70_000, 30_000)
    assert (
        run(s, c.ConfirmHold, T0 + 999, hold_id="h", amount_fen=30_001).result
        is Result.EXCEEDS_HOLD
    )
    part = run(s, c.ConfirmHold, T0 + 999, hold_id="h", amount_fen=10_000).state
    assert (part.outstanding_fen, part.held_fen, part.available_fen) == (10_000, 0, 90_000)
    late = run(s, c.ConfirmHold, T0 + 1_000, hold_id="h")
    assert late.result is Result.HOLD_NOT_FOUND
    assert [e.kind for e in late.events] == ["hold_expired"]  # time's effect is kept
    assert late.state.available_fen == 100_000 and late.state.version == s.version + 1


def test_freeze_stops_draws_not_repayments() -> None:
    s = run(run(opened(), c.Draw, T0, amount_fen=1_000).state, c.Freeze, T0, reason="fraud").state
    assert s.status is Status.FROZEN
    assert run(s, c.Draw, T0, amount_fen=100).result is Result.POOL_FROZEN
    assert run(s, c.Repay, T0, amount_fen=1_000).result is Result.OK
    assert run(s, c.Unfreeze, T0).state.status is Status.OPEN


def test_close_needs_nothing_owed_and_zeroes_the_line_then_reopen() -> None:
    s = run(opened(), c.Draw, T0, amount_fen=1_000).state
    assert run(s, c.ClosePool, T0).result is Result.HAS_BALANCE
    s = run(s, c.Repay, T0 + DAY, amount_fen=1_000 + s.accrued_fen).state
    # a day of 18 % on 1,000 fen is under one fen: nothing accrued yet, so closing works
    closed = run(s, c.ClosePool, T0 + DAY)
    assert closed.result is Result.OK and closed.state.limit_fen == 0
    assert closed.postings == {Account.LIMIT: 1_000_000, Account.AVAILABLE: -1_000_000}
    assert run(closed.state, c.Draw, T0 + DAY, amount_fen=100).result is Result.POOL_CLOSED
    reopened = run(closed.state, c.OpenPool, T0 + 2 * DAY, limit_fen=50_000).state
    assert reopened.status is Status.OPEN and reopened.limit_fen == 50_000


def test_repay_pays_accrued_interest_so_a_pool_can_be_paid_off_any_day() -> None:
    s = run(opened(), c.Draw, T0, amount_fen=1_000_000).state
    d = run(s, c.Repay, T0 + 10 * DAY, amount_fen=1_000_000 + 4_931)
    assert d.result is Result.OK  # 10 days of 18 % on 1,000,000 = 4,931.5 fen accrued
    assert d.state.owed_fen == 0
    assert d.postings[Account.INCOME] == -4_931


def test_mileage_tiers_health_boosts_and_life_stages() -> None:
    s = opened(100_000)
    same = run(s, c.ReportMileage, T0, km_per_month=1_499)  # recorded, the rate tier unchanged
    assert [e.kind for e in same.events] == ["mileage_reported"]
    assert same.state.rate_bps == s.rate_bps == 1800
    assert run(s, c.ReportMileage, T0, km_per_month=3_000).state.rate_bps == 1500
    t = T0
    for _ in range(11):  # four days apart: within the cool-down and the weekly count
        t += 4 * DAY
        d = run(s, c.HealthGoalMet, t)
        if d.result is not Result.OK:
            break
        s = d.state
    assert s.limit_fen == 600_000 and d.result is Result.BOOST_CAP_REACHED
    assert run(s, c.LifeStage, t, event=c.LifeEvent.HOME_PURCHASE).state.limit_fen == 690_000
    s = run(s, c.Draw, t, amount_fen=550_000).state
    lowered = run(s, c.LifeStage, t, event=c.LifeEvent.RETIREMENT).state
    assert lowered.limit_fen == 550_000 and lowered.available_fen == 0  # never below usage


# (setup commands, refused command, expected result): the state must not change at all.
REFUSALS = [
    ([], c.OpenPool(user="u", key="x", limit_fen=50_000), Result.POOL_EXISTS),
    ([], c.Draw(user="u", key="x", amount_fen=100_001), Result.EXCEEDS_CREDIT),
    ([], c.Draw(user="u", key="x", amount_fen=99), Result.BELOW_MIN_DRAW),
    ([], c.Repay(user="u", key="x", amount_fen=1), Result.EXCEEDS_DEBT),
    ([], c.ConfirmHold(user="u", key="x", hold_id="nope"), Result.HOLD_NOT_FOUND),
    ([], c.ReleaseHold(user="u", key="x", hold_id="nope"), Result.HOLD_NOT_FOUND),
    (
        [],
        c.PlaceHold(user="u", key="x", hold_id="h", amount_fen=100, ttl_ms=8 * DAY),
        Result.HOLD_TTL_TOO_LONG,
    ),
    (
        [c.PlaceHold(user="u", key="a", hold_id="h", amount_fen=100)],
        c.PlaceHold(user="u", key="x", hold_id="h", amount_fen=100),
        Result.HOLD_EXISTS,
    ),
    ([], c.PlaceHold(user="u", key="x", hold_id="h", amount_fen=100_001), Result.EXCEEDS_CREDIT),
    ([], c.Unfreeze(user="u", key="x"), Result.NOT_FROZEN),
    ([c.Freeze(user="u", key="a")], c.Freeze(user="u", key="x"), Result.ALREADY_FROZEN),
    ([c.Freeze(user="u", key="a")], c.HealthGoalMet(user="u", key="x"), Result.POOL_FROZEN),
    (
        [c.Draw(user="u", key="a", amount_fen=100)],
        c.ClosePool(user="u", key="x"),
        Result.HAS_BALANCE,
    ),
    (
        [c.Draw(user="u", key="a", amount_fen=90_000)],
        c.SetLimit(user="u", key="x", limit_fen=80_000),
        Result.LIMIT_BELOW_USAGE,
    ),
    ([], c.SetLimit(user="u", key="x", limit_fen=9_999), Result.LIMIT_OUT_OF_RANGE),
    (
        [c.ClosePool(user="u", key="a")],
        c.Repay(user="u", key="x", amount_fen=1),
        Result.POOL_CLOSED,
    ),
    ([c.ClosePool(user="u", key="a")], c.Freeze(user="u", key="x"), Result.POOL_CLOSED),
]


@pytest.mark.parametrize(
    ("setup", "cmd", "result"), REFUSALS, ids=[r[2].value + str(i) for i, r in enumerate(REFUSALS)]
)
def test_refusals_change_nothing(setup: list[c.Command], cmd: c.Command, result: Result) -> None:
    s = opened(100_000)
    for step in setup:
        d = decide(s, step, T0, DEFAULT)
        assert d.result is Result.OK, step
        s = d.state
    decision = decide(s, cmd, T0, DEFAULT)
    assert decision.result is result
    assert decision.state is s and decision.events == () and not decision.postings


def test_unknown_pool_and_bad_open() -> None:
    assert (
        decide(None, c.Draw(user="u", key="k", amount_fen=1), T0, DEFAULT).result
        is Result.POOL_NOT_FOUND
    )
    assert (
        decide(None, c.OpenPool(user="u", key="k", limit_fen=1), T0, DEFAULT).result
        is Result.LIMIT_OUT_OF_RANGE
    )


def test_a_clock_that_goes_backwards_moves_nothing_backwards() -> None:
    s = run(opened(), c.Draw, T0 + DAY, amount_fen=1_000).state
    d = run(s, c.Draw, T0, amount_fen=1_000)  # another host, a slower clock
    assert d.result is Result.OK and d.state.updated_ms == T0 + DAY


def test_state_for_another_user_is_a_bug() -> None:
    with pytest.raises(ValueError, match="state of"):
        decide(opened(), c.Tick(user="other", key="k"), T0, TEST_POLICY)


ONE_OF_EACH = [
    c.OpenPool(user="u", key="k", limit_fen=20_000),
    c.Draw(user="u", key="k", amount_fen=1_000),
    c.Repay(user="u", key="k", amount_fen=1_000),
    c.PlaceHold(user="u", key="k", hold_id="h", amount_fen=1_000),
    c.ConfirmHold(user="u", key="k", hold_id="h"),
    c.ReleaseHold(user="u", key="k", hold_id="h"),
    c.Freeze(user="u", key="k"),
    c.Unfreeze(user="u", key="k"),
    c.ClosePool(user="u", key="k"),
    c.SetLimit(user="u", key="k", limit_fen=20_000),
    c.ReportMileage(user="u", key="k", km_per_month=10),
    c.HealthGoalMet(user="u", key="k"),
    c.LifeStage(user="u", key="k", event=c.LifeEvent.MARRIAGE),
    c.ReportTurnover(user="u", key="k", day=T0 // DAY, turnover_fen=1),
    c.Tick(user="u", key="k"),
]


def test_every_command_kind_has_a_handler() -> None:
    assert sorted(cmd.KIND for cmd in ONE_OF_EACH) == sorted(c.COMMANDS)
    for cmd in ONE_OF_EACH:  # each is decided (or refused), none is unknown to the engine
        assert isinstance(decide(opened(), cmd, T0, DEFAULT).result, Result)


def test_a_command_the_engine_does_not_know_is_a_type_error() -> None:
    @dataclasses.dataclass(frozen=True)
    class Teleport(c.Command):
        KIND = "teleport"

    with pytest.raises(TypeError, match="unknown command Teleport"):
        decide(opened(), Teleport(user="u", key="k"), T0, DEFAULT)

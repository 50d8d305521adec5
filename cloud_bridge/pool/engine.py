"""The credit-pool state machine: (state, command, now, policy) -> decision. Pure: no I/O, no clock.

`decide` first lets time pass (`statements.catch_up`: expired holds, statements, raises, then a
merchant pool's review if one is due: `merchant.py`), then applies the command. A refused
command still keeps what time did, so a refusal can change the pool (a hold that expired
meanwhile); the command's own effect happens only with `Result.OK`. Every state change comes
with events and one balanced journal entry, and bumps `version` by one.
The control flow lives in `decide`; each command's rule is one handler, found in `_HANDLERS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from cloud_bridge.pool import commands as c
from cloud_bridge.pool import merchant, trigger_limits
from cloud_bridge.pool.events import Event
from cloud_bridge.pool.ledger import Account, Journal, unbalanced
from cloud_bridge.pool.policy import DAY_MS, Policy
from cloud_bridge.pool.results import Result
from cloud_bridge.pool.state import Hold, MileageClaim, Plan, PoolState, Status
from cloud_bridge.pool.statements import catch_up, drop_paid_plans


@dataclass(frozen=True)
class Decision:
    """What a command did. `state` is None only for a pool that does not exist (and still
    does not). `postings` is the journal entry of this change (empty if nothing moved)."""

    result: Result
    state: PoolState | None
    events: tuple[Event, ...] = ()
    postings: dict[Account, int] | None = None

    @property
    def changed(self) -> bool:
        return bool(self.events)


Step = tuple[PoolState, list[Event]]
"""A handler's answer: the pool after the command and the events it caused."""


class _Refused(Exception):
    """Internal: carries a refusal out of a handler (never leaves this module)."""

    def __init__(self, result: Result) -> None:
        self.result = result


def decide(state: PoolState | None, command: c.Command, now_ms: int, policy: Policy) -> Decision:
    """The next state of the pool `command.user` (`state` must be that pool or None)."""
    if state is not None and state.user != command.user:
        raise ValueError(f"state of {state.user!r} given for a command on {command.user!r}")
    journal = Journal()
    if state is None:
        if not isinstance(command, c.OpenPool):
            return Decision(Result.POOL_NOT_FOUND, None)
        try:
            opened, events = _open(None, command, now_ms, policy, journal)
        except _Refused as refusal:
            return Decision(refusal.result, None)
        return _finish(Result.OK, None, opened, events, journal)
    before = state
    state, events = catch_up(state, now_ms, policy, journal)
    now = state.updated_ms
    state, reviewed = _merchant_review(state, now, policy, journal)
    events += reviewed
    time_only = dict(journal.amounts)
    try:
        after, more = _apply(state, command, now, policy, journal)
    except _Refused as refusal:
        journal.amounts = time_only  # a refusal keeps what time did and nothing else
        return _finish(refusal.result, before, state, events, journal)
    return _finish(Result.OK, before, after, events + more, journal)


def _finish(
    result: Result,
    before: PoolState | None,
    after: PoolState,
    events: list[Event],
    journal: Journal,
) -> Decision:
    problems = unbalanced(journal.amounts)
    if problems:  # a bug in a handler, never input: fail loudly before anything is stored
        raise AssertionError(f"unbalanced journal entry: {problems}")
    if events:
        version = before.version + 1 if before is not None else 1
        after = replace(after, version=version)
        return Decision(result, after, tuple(events), dict(journal.amounts))
    # Time alone (accrual) is not a change: keep the stored state untouched and unversioned.
    return Decision(result, before if before is not None else after, (), {})


def _require_open(state: PoolState) -> None:
    if state.status is Status.CLOSED:
        raise _Refused(Result.POOL_CLOSED)
    if state.status is Status.FROZEN:
        raise _Refused(Result.POOL_FROZEN)


def _open(
    state: PoolState | None, cmd: c.OpenPool, now: int, policy: Policy, journal: Journal
) -> Step:
    if not policy.limits.min_fen <= cmd.limit_fen <= policy.limits.max_fen:
        raise _Refused(Result.LIMIT_OUT_OF_RANGE)
    rate = policy.rates.base_bps if cmd.rate_bps is None else cmd.rate_bps
    journal.set_limit(cmd.limit_fen)
    opened = PoolState(
        user=cmd.user,
        status=Status.OPEN,
        limit_fen=cmd.limit_fen,
        rate_bps=rate,
        opened_ms=now,
        updated_ms=now,
        next_statement_ms=now + policy.cycle_ms,
        accrual_rem=state.accrual_rem if state is not None else 0,
        next_plan_no=state.next_plan_no if state is not None else 1,
        version=state.version if state is not None else 0,
        # A reopened pool keeps its trigger windows: the limits are the user's, not the line's.
        emergencies=state.emergencies if state is not None else (),
        boosts_ms=state.boosts_ms if state is not None else (),
        mileage=state.mileage if state is not None else None,
        turnover=state.turnover if state is not None else (),
        first_turnover_day=state.first_turnover_day if state is not None else None,
        next_review_ms=state.next_review_ms if state is not None else 0,
    )
    return opened, [Event("opened", now, {"limit_fen": cmd.limit_fen, "rate_bps": rate})]


def _apply(s: PoolState, cmd: c.Command, now: int, policy: Policy, journal: Journal) -> Step:
    """One command on a pool whose clock is already at `now`. Raises _Refused to refuse."""
    handler = _HANDLERS.get(type(cmd))
    if handler is None:
        raise TypeError(f"unknown command {type(cmd).__name__}")
    return handler(s, cmd, now, policy, journal)


def _reopen(s: PoolState, cmd: c.OpenPool, now: int, policy: Policy, journal: Journal) -> Step:
    if s.status is not Status.CLOSED:
        raise _Refused(Result.POOL_EXISTS)
    return _open(s, cmd, now, policy, journal)


def _tick(s: PoolState, cmd: c.Tick, now: int, policy: Policy, journal: Journal) -> Step:
    return s, []  # time already passed in `catch_up`: nothing else to do


def _release(s: PoolState, cmd: c.ReleaseHold, now: int, policy: Policy, journal: Journal) -> Step:
    hold = _find_hold(s, cmd.hold_id)
    if s.status is Status.CLOSED:
        raise _Refused(Result.POOL_CLOSED)
    journal.unhold(hold.amount_fen)
    holds = tuple(h for h in s.holds if h is not hold)
    ev = Event("hold_released", now, {"hold_id": hold.hold_id, "amount_fen": hold.amount_fen})
    return replace(s, holds=holds), [ev]


def _freeze(s: PoolState, cmd: c.Freeze, now: int, policy: Policy, journal: Journal) -> Step:
    if s.status is Status.CLOSED:
        raise _Refused(Result.POOL_CLOSED)
    if s.status is Status.FROZEN:
        raise _Refused(Result.ALREADY_FROZEN)
    ev = Event("frozen", now, {"reason": cmd.reason})
    return replace(s, status=Status.FROZEN, freeze_reason=cmd.reason), [ev]


def _unfreeze(s: PoolState, cmd: c.Unfreeze, now: int, policy: Policy, journal: Journal) -> Step:
    if s.status is not Status.FROZEN:
        raise _Refused(Result.POOL_CLOSED if s.status is Status.CLOSED else Result.NOT_FROZEN)
    return replace(s, status=Status.OPEN, freeze_reason=""), [Event("unfrozen", now)]


def _close(s: PoolState, cmd: c.ClosePool, now: int, policy: Policy, journal: Journal) -> Step:
    if s.status is Status.CLOSED:
        raise _Refused(Result.POOL_CLOSED)
    if s.owed_fen or s.holds:
        raise _Refused(Result.HAS_BALANCE)
    journal.set_limit(-s.limit_fen)
    ev = Event("closed", now, {"limit_fen": s.limit_fen})
    closed = replace(s, status=Status.CLOSED, limit_fen=0, freeze_reason="", boost_fen=0)
    return replace(closed, due_ms=0, min_due_fen=0, due_left_fen=0, on_time_cycles=0), [ev]


def _operator_limit(
    s: PoolState, cmd: c.SetLimit, now: int, policy: Policy, journal: Journal
) -> Step:
    if s.status is Status.CLOSED:
        raise _Refused(Result.POOL_CLOSED)
    if not policy.limits.min_fen <= cmd.limit_fen <= policy.limits.max_fen:
        raise _Refused(Result.LIMIT_OUT_OF_RANGE)
    if cmd.limit_fen < s.outstanding_fen + s.held_fen:
        raise _Refused(Result.LIMIT_BELOW_USAGE)
    return _set_limit(s, cmd.limit_fen, now, "operator", journal)


def _mileage(
    s: PoolState, cmd: c.ReportMileage, now: int, policy: Policy, journal: Journal
) -> Step:
    if s.status is Status.CLOSED:
        raise _Refused(Result.POOL_CLOSED)
    km = cmd.km_per_month
    refusal = trigger_limits.mileage_refusal(s, km, now, policy)
    if refusal is not None:
        raise _Refused(refusal)
    # Every accepted report is recorded (the next one is judged against it), so it is a change.
    events = [Event("mileage_reported", now, {"km": km})]
    rate = policy.rates.for_mileage(km)
    if rate != s.rate_bps:
        events.append(
            Event("rate_changed", now, {"from_bps": s.rate_bps, "to_bps": rate, "km": km})
        )
    return replace(s, rate_bps=rate, mileage=MileageClaim(km, now)), events


def _health(s: PoolState, cmd: c.HealthGoalMet, now: int, policy: Policy, journal: Journal) -> Step:
    _require_open(s)
    step = min(policy.health.boost_fen, policy.health.max_boost_fen - s.boost_fen)
    target = min(s.limit_fen + max(step, 0), policy.limits.max_fen)
    if target <= s.limit_fen:
        raise _Refused(Result.BOOST_CAP_REACHED)
    refusal = trigger_limits.boost_refusal(s, now, policy)
    if refusal is not None:
        raise _Refused(refusal)
    boosted, events = _set_limit(s, target, now, "health_goal", journal)
    return replace(
        boosted,
        boost_fen=s.boost_fen + target - s.limit_fen,
        boosts_ms=trigger_limits.boosted(s, now),
    ), events


def _life_stage(s: PoolState, cmd: c.LifeStage, now: int, policy: Policy, journal: Journal) -> Step:
    _require_open(s)
    bps = policy.life_stage.change_bps(cmd.event)
    if bps >= 0:
        target = min(s.limit_fen + s.limit_fen * bps // 10_000, policy.limits.max_fen)
        target = max(target, s.limit_fen)  # a raise never lowers a limit above the cap
    else:
        target = s.limit_fen - s.limit_fen * -bps // 10_000
        floor = max(policy.limits.min_fen, s.outstanding_fen + s.held_fen)
        target = min(max(target, floor), s.limit_fen)  # never below usage: available >= 0
    return _set_limit(s, target, now, f"life_stage:{cmd.event.value}", journal)


def _merchant_review(s: PoolState, now: int, policy: Policy, journal: Journal) -> Step:
    """A merchant pool's scheduled review, if due by `now` (time's part: kept on a refusal)."""
    if not s.next_review_ms or now < s.next_review_ms or s.status is Status.CLOSED:
        return s, []
    assert s.first_turnover_day is not None, "a review is scheduled by the first report"
    r = merchant.review(s.turnover, s.first_turnover_day, now // DAY_MS, policy.merchant)
    in_range = min(max(r.target_fen, policy.limits.min_fen), policy.limits.max_fen)
    target = max(in_range, s.outstanding_fen + s.held_fen)
    if s.status is Status.FROZEN:
        target = min(target, s.limit_fen)  # a frozen pool may shrink, never grow
    data = {
        "monthly_fen": r.monthly_fen,
        "reported_days": r.reported_days,
        "history_days": r.history_days,
        "cv_bps": r.cv_bps,
        "target_fen": r.target_fen,
        "limit_fen": target,
    }
    s = replace(
        s,
        turnover=merchant.in_window(s.turnover, now, policy),
        next_review_ms=merchant.next_review_after(s.next_review_ms, now, policy.merchant.review_ms),
    )
    s, changed = _set_limit(s, target, now, "merchant_review", journal)
    return s, [Event("merchant_reviewed", now, data), *changed]


def _turnover(
    s: PoolState, cmd: c.ReportTurnover, now: int, policy: Policy, journal: Journal
) -> Step:
    if s.status is Status.CLOSED:
        raise _Refused(Result.POOL_CLOSED)
    refusal = merchant.report_refusal(s, cmd.day, cmd.turnover_fen, now, policy)
    if refusal is not None:
        raise _Refused(refusal)
    first = cmd.day if s.first_turnover_day is None else min(s.first_turnover_day, cmd.day)
    ev = Event("turnover_reported", now, {"day": cmd.day, "turnover_fen": cmd.turnover_fen})
    return replace(
        s,
        turnover=merchant.reported(s, cmd.day, cmd.turnover_fen, now, policy),
        first_turnover_day=first,
        next_review_ms=s.next_review_ms or now + policy.merchant.review_ms,
    ), [ev]


def _set_limit(s: PoolState, limit: int, now: int, why: str, journal: Journal) -> Step:
    if limit == s.limit_fen:
        return s, []
    journal.set_limit(limit - s.limit_fen)
    ev = Event("limit_changed", now, {"from_fen": s.limit_fen, "to_fen": limit, "why": why})
    return replace(s, limit_fen=limit), [ev]


def _usable(s: PoolState, policy: Policy, emergency: bool) -> int:
    """Available credit a draw or hold may take: all of it for emergencies, less the reserve
    otherwise."""
    if emergency:
        return s.available_fen
    reserve = s.limit_fen * policy.emergency.reserve_bps // 10_000
    return max(0, s.available_fen - reserve)


def _draw(s: PoolState, cmd: c.Draw, now: int, policy: Policy, journal: Journal) -> Step:
    _require_open(s)
    if cmd.amount_fen < policy.limits.min_draw_fen:
        raise _Refused(Result.BELOW_MIN_DRAW)
    if cmd.installments and (
        cmd.installments != policy.installments.periods
        or cmd.amount_fen < policy.installments.min_amount_fen
    ):
        raise _Refused(Result.INSTALLMENTS_NOT_ELIGIBLE)
    emergency = cmd.emergency is not None
    usable = _usable(s, policy, emergency)
    amount = cmd.amount_fen
    budget = amount  # what the emergency budget still allows (other draws have none)
    if emergency:
        refusal = trigger_limits.emergency_count_refusal(s, now, policy)
        if refusal is not None:
            raise _Refused(refusal)
        budget = trigger_limits.emergency_left_fen(s, now, policy)
    if cmd.up_to:  # as much as allowed, but never below the smallest draw: that is refused
        amount = max(min(amount, budget, usable), policy.limits.min_draw_fen)
    if amount > budget:
        raise _Refused(Result.EXCEEDS_EMERGENCY_BUDGET)
    if amount > usable:
        raise _Refused(Result.EXCEEDS_CREDIT)
    data: dict[str, int | str] = {"amount_fen": amount}
    if cmd.up_to:
        data["asked_fen"] = cmd.amount_fen
    if cmd.installments:
        journal.draw(amount, installment=True)
        plan = Plan(s.next_plan_no, amount, cmd.installments)
        data.update(plan_no=plan.plan_no, periods=cmd.installments)
        s = replace(s, plans=(*s.plans, plan), next_plan_no=s.next_plan_no + 1)
    else:
        journal.draw(amount)
        s = replace(s, principal_fen=s.principal_fen + amount)
    if cmd.emergency is not None:
        data.update(
            emergency=cmd.emergency.value,
            respond_within_ms=policy.emergency.response_ms(cmd.emergency),
        )
        s = replace(s, emergencies=trigger_limits.spend(s, amount, now))
    return s, [Event("drawn", now, data)]


def _repay(s: PoolState, cmd: c.Repay, now: int, policy: Policy, journal: Journal) -> Step:
    if s.status is Status.CLOSED:
        raise _Refused(Result.POOL_CLOSED)
    if cmd.amount_fen > s.owed_fen:
        raise _Refused(Result.EXCEEDS_DEBT)
    left = cmd.amount_fen
    to_interest = min(left, s.interest_fen)
    left -= to_interest
    to_accrued = min(left, s.accrued_fen)
    left -= to_accrued
    to_principal = min(left, s.principal_fen)
    left -= to_principal
    plans, unused = drop_paid_plans(s.plans, left)
    assert unused == 0, "owed_fen covers every part"
    journal.repay_interest(to_interest)
    journal.repay_accrued(to_accrued)
    journal.repay_principal(to_principal)
    journal.repay_principal(left, installment=True)
    due_left = s.due_left_fen
    if now <= s.due_ms:
        due_left = max(0, due_left - cmd.amount_fen)
    ev = Event(
        "repaid",
        now,
        {
            "amount_fen": cmd.amount_fen,
            "interest_fen": to_interest + to_accrued,
            "principal_fen": to_principal,
            "installment_fen": left,
        },
    )
    return (
        replace(
            s,
            interest_fen=s.interest_fen - to_interest,
            accrued_fen=s.accrued_fen - to_accrued,
            principal_fen=s.principal_fen - to_principal,
            plans=plans,
            due_left_fen=due_left,
        ),
        [ev],
    )


def _find_hold(s: PoolState, hold_id: str) -> Hold:
    for hold in s.holds:
        if hold.hold_id == hold_id:
            return hold
    raise _Refused(Result.HOLD_NOT_FOUND)


def _hold(s: PoolState, cmd: c.PlaceHold, now: int, policy: Policy, journal: Journal) -> Step:
    _require_open(s)
    if any(h.hold_id == cmd.hold_id for h in s.holds):
        raise _Refused(Result.HOLD_EXISTS)
    if cmd.amount_fen < policy.limits.min_draw_fen:
        raise _Refused(Result.BELOW_MIN_DRAW)
    ttl = policy.holds.default_ttl_ms if cmd.ttl_ms is None else cmd.ttl_ms
    if ttl > policy.holds.max_ttl_ms:
        raise _Refused(Result.HOLD_TTL_TOO_LONG)
    if len(s.holds) >= policy.holds.max_active:
        raise _Refused(Result.TOO_MANY_HOLDS)
    if cmd.amount_fen > _usable(s, policy, False):
        raise _Refused(Result.EXCEEDS_CREDIT)
    journal.hold(cmd.amount_fen)
    hold = Hold(cmd.hold_id, cmd.amount_fen, now + ttl, cmd.merchant)
    data: dict[str, int | str] = {
        "hold_id": cmd.hold_id,
        "amount_fen": cmd.amount_fen,
        "expires_ms": hold.expires_ms,
    }
    if cmd.merchant:
        data["merchant"] = cmd.merchant
    return replace(s, holds=(*s.holds, hold)), [Event("hold_placed", now, data)]


def _confirm(s: PoolState, cmd: c.ConfirmHold, now: int, policy: Policy, journal: Journal) -> Step:
    hold = _find_hold(s, cmd.hold_id)
    _require_open(s)
    amount = hold.amount_fen if cmd.amount_fen is None else cmd.amount_fen
    if amount > hold.amount_fen:
        raise _Refused(Result.EXCEEDS_HOLD)
    holds = tuple(h for h in s.holds if h is not hold)
    data: dict[str, int | str] = {
        "hold_id": hold.hold_id,
        "amount_fen": amount,
        "released_fen": hold.amount_fen - amount,
    }
    journal.unhold(hold.amount_fen - amount)
    offered = policy.installments.automatic_plan(hold.merchant, amount)
    if offered and cmd.opt_out:  # recorded: the cloud team sees a plan offered and declined
        data["plan_opt_out"] = 1
    if not offered or cmd.opt_out:
        journal.draw(amount, from_held=True)
        ev = Event("hold_confirmed", now, data)
        return replace(s, holds=holds, principal_fen=s.principal_fen + amount), [ev]
    journal.draw(amount, installment=True, from_held=True)
    plan = Plan(s.next_plan_no, amount, policy.installments.periods)
    data.update(plan_no=plan.plan_no, periods=plan.periods_left)
    ev = Event("hold_confirmed", now, data)
    return replace(s, holds=holds, plans=(*s.plans, plan), next_plan_no=plan.plan_no + 1), [ev]


Handler = Callable[[PoolState, Any, int, Policy, Journal], Step]
_HANDLERS: Mapping[type[c.Command], Handler] = {
    c.OpenPool: _reopen,
    c.Tick: _tick,
    c.Repay: _repay,
    c.Draw: _draw,
    c.PlaceHold: _hold,
    c.ConfirmHold: _confirm,
    c.ReleaseHold: _release,
    c.Freeze: _freeze,
    c.Unfreeze: _unfreeze,
    c.ClosePool: _close,
    c.SetLimit: _operator_limit,
    c.ReportMileage: _mileage,
    c.HealthGoalMet: _health,
    c.LifeStage: _life_stage,
    c.ReportTurnover: _turnover,
}
"""The handler of each command on an existing pool (a new pool only takes OpenPool: `decide`)."""

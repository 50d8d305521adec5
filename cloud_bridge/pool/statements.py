"""Time in a pool: interest accrual, hold expiry, monthly statements and automatic raises.

The engine is lazy: nothing runs on a timer. Before any command, `catch_up` replays what the
passage of time did since the pool was last touched, in time order: holds whose lifetime ended
are released, and every statement date passed closes a statement. A scheduler that wants
statements on time sends `Tick` commands; the result is the same either way.

Statement rules (cycle length, grace, minimum payment, raise) are policy; see docs/credit-pool.md.
"""

from __future__ import annotations

from dataclasses import replace

from cloud_bridge.pool.events import Event
from cloud_bridge.pool.ledger import Journal
from cloud_bridge.pool.policy import Policy
from cloud_bridge.pool.state import ACCRUAL_DENOM, Plan, PoolState, Status


def accrue(state: PoolState, to_ms: int) -> PoolState:
    """Interest on revolving principal from `updated_ms` to `to_ms` (simple, actual/365)."""
    elapsed = to_ms - state.updated_ms
    if elapsed <= 0:
        return state
    if not state.principal_fen or not state.rate_bps:
        return replace(state, updated_ms=to_ms)
    numerator = state.principal_fen * elapsed * state.rate_bps + state.accrual_rem
    whole, rem = divmod(numerator, ACCRUAL_DENOM)
    return replace(state, accrued_fen=state.accrued_fen + whole, accrual_rem=rem, updated_ms=to_ms)


def minimum_payment(state: PoolState, installments_billed_fen: int, policy: Policy) -> int:
    """Billed interest, the installments billed this cycle, and a share of revolving principal
    (at least the floor), never more than everything owed."""
    principal = state.principal_fen
    share = -(-principal * policy.statement.min_payment_bps // 10_000)
    revolving = max(share, min(policy.statement.min_payment_floor_fen, principal))
    owed = state.interest_fen + principal + state.installment_fen
    return min(owed, state.interest_fen + installments_billed_fen + revolving)


def close_statement(
    state: PoolState, policy: Policy, journal: Journal
) -> tuple[PoolState, list[Event]]:
    """Close the statement due at `state.next_statement_ms` (interest already accrued to it)."""
    at = state.next_statement_ms
    events: list[Event] = []
    streak = state.on_time_cycles
    # 1. Judge the cycle that ends here: in good standing unless the previous statement's
    # minimum went unpaid by its due date. A cycle with nothing due (a user who never borrows,
    # or the first cycle) is in good standing too, so growth does not wait for debt.
    if state.min_due_fen > 0 and state.due_left_fen > 0:
        streak = 0
        events.append(
            Event("payment_missed", at, {"due_ms": state.due_ms, "unpaid_fen": state.due_left_fen})
        )
    else:
        streak += 1
    # 2. Automatic raise after enough consecutive cycles in good standing (self-growth).
    limit = state.limit_fen
    if streak >= policy.raises.after_on_time_cycles and state.status is Status.OPEN:
        streak = 0
        raised = max(
            limit, min(limit + limit * policy.raises.step_bps // 10_000, policy.limits.max_fen)
        )
        if raised > limit:
            journal.set_limit(raised - limit)
            events.append(Event("limit_raised", at, {"from_fen": limit, "to_fen": raised}))
            limit = raised
    # 3. Bill accrued interest.
    billed = state.accrued_fen
    if billed:
        journal.bill_interest(billed)
    # 4. Bill one period of every installment plan.
    installments_billed = 0
    plans = []
    for plan in state.plans:
        installments_billed += plan.period_fen()
        plans.append(replace(plan, periods_left=max(0, plan.periods_left - 1)))
    state = replace(
        state,
        limit_fen=limit,
        interest_fen=state.interest_fen + billed,
        accrued_fen=0,
        plans=tuple(plans),
        on_time_cycles=streak,
    )
    min_due = minimum_payment(state, installments_billed, policy)
    due_ms = at + policy.grace_ms
    state = replace(
        state,
        due_ms=due_ms,
        min_due_fen=min_due,
        due_left_fen=min_due,
        next_statement_ms=at + policy.cycle_ms,
    )
    events.append(
        Event(
            "statement_closed",
            at,
            {
                "interest_billed_fen": billed,
                "installments_billed_fen": installments_billed,
                "min_due_fen": min_due,
                "due_ms": due_ms,
                "outstanding_fen": state.outstanding_fen,
                "interest_fen": state.interest_fen,
            },
        )
    )
    return state, events


def catch_up(
    state: PoolState, now_ms: int, policy: Policy, journal: Journal
) -> tuple[PoolState, list[Event]]:
    """Everything time did between `state.updated_ms` and `now_ms`, in time order. A clock that
    went backwards (another process, a skewed host) is treated as no time passing."""
    target = max(now_ms, state.updated_ms)
    events: list[Event] = []
    while True:
        expiring = min(state.holds, key=lambda h: (h.expires_ms, h.hold_id), default=None)
        statement_due = state.status is not Status.CLOSED and state.next_statement_ms <= target
        if (
            expiring is not None
            and expiring.expires_ms <= target
            and (not statement_due or expiring.expires_ms <= state.next_statement_ms)
        ):
            state = accrue(state, expiring.expires_ms)
            journal.unhold(expiring.amount_fen)
            state = replace(state, holds=tuple(h for h in state.holds if h is not expiring))
            events.append(
                Event(
                    "hold_expired",
                    expiring.expires_ms,
                    {"hold_id": expiring.hold_id, "amount_fen": expiring.amount_fen},
                )
            )
        elif statement_due:
            state = accrue(state, state.next_statement_ms)
            state, closed = close_statement(state, policy, journal)
            events += closed
        else:
            break
    return accrue(state, target), events


NEVER_MS = (1 << 63) - 1
"""`next_due_ms` of a pool that time alone will never change (a closed pool without holds)."""


def next_due_ms(state: PoolState) -> int:
    """When time alone next changes the pool: its earliest hold expiry, its next statement
    (unless closed) or its next merchant review (unless closed), whichever comes first; at that
    moment a `Tick` makes a change (catch_up and the engine's review run exactly these).
    `NEVER_MS` if none. Interest accrues continuously but is only billed by a statement."""
    due = [h.expires_ms for h in state.holds]
    if state.status is not Status.CLOSED:
        due.append(state.next_statement_ms)
        if state.next_review_ms:
            due.append(state.next_review_ms)
    return min(due, default=NEVER_MS)


def drop_paid_plans(plans: tuple[Plan, ...], paid_fen: int) -> tuple[tuple[Plan, ...], int]:
    """Apply `paid_fen` to plans, oldest first; return the plans left and the amount unused."""
    left = []
    for plan in plans:
        take = min(paid_fen, plan.principal_fen)
        paid_fen -= take
        if plan.principal_fen - take:
            left.append(replace(plan, principal_fen=plan.principal_fen - take))
    return tuple(left), paid_fen

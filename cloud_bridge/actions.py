"""From one accepted device event and its risk verdict to credit-pool commands.

    restock trigger   -> place a hold (the offer) for the estimated cost, expiring after hold_ttl_s
    health streak     -> health-goal limit boost
    EV mileage tier   -> report the 30-day mileage (the pool picks the rate tier)
    turnover          -> report a merchant's day of turnover (the pool's limit follows it)
    emergency         -> an expedited emergency draw: the device's amount, all or nothing; without
                         one, as much of the kind's default ([policy] emergency_fen) as the pool
                         and the day's emergency budget allow
    application       -> decided by the scorecard and the user's devices once the ingest has read
                         them (`approved`): open the pool with the approved limit and rate
    freeze verdict    -> freeze the pool (any event)

Triggers act on an allow verdict. On a step_up verdict, with `[risk] step_up = "confirm"` (the
default), the action waits for the user's confirmation on their primary device
(`cloud_bridge.stepups`): the plan keeps it without a command (`stepup` PENDING, result
`step_up_pending`), and runs it when the confirmation comes (`plan(..., confirmed=True)`), or
reports `step_up_declined` / `step_up_expired`; with `step_up = "allow"` it acts at once. A
trigger held back by a hold or freeze verdict keeps its action and amount in the plan, without
a command, so the published decision says what was not done and why: result `risk_hold` (or
`risk_freeze`) and the verdict's reasons.
Every command's idempotency key derives from
the event (device:seq:action), so a redelivered event can never act twice. How often and how
much triggers may ask is the pool's to enforce (`cloud_bridge.pool.trigger_limits`): a refused
trigger's decision carries the pool's result code, and `refusal` says which to count. Pure.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace

from cloud_bridge.config import BridgeConfig
from cloud_bridge.pool.approval import ApplicationDecision
from cloud_bridge.pool.approval import Outcome as ApprovalOutcome
from cloud_bridge.pool.commands import (
    Command,
    Draw,
    Emergency,
    Freeze,
    HealthGoalMet,
    OpenPool,
    PlaceHold,
    ReportMileage,
    ReportTurnover,
)
from cloud_bridge.pool.events import Event
from cloud_bridge.pool.results import Result
from cloud_bridge.pool.service import Outcome
from cloud_bridge.risk.touch import TOUCH_LOCKED, TOUCH_MISMATCH, TOUCH_MISSING
from cloud_bridge.risk.verdict import Level, Verdict
from protocol import messages as m


class Action(enum.StrEnum):
    """The event's own pool action (the `action` field of the published decision)."""

    NONE = "none"
    HOLD = "hold"
    HEALTH_BOOST = "health_boost"
    MILEAGE = "mileage"
    EMERGENCY_DRAW = "emergency_draw"
    TURNOVER = "turnover"
    APPLY = "apply"  # a phone's credit application (the decision's result: approve, ...)
    INTERNAL_ERROR = "internal_error"  # the mapping failed: the event is stored, not acted on


class StepUp(enum.StrEnum):
    """Where an event's action stands against a step-up (NONE: no step-up asked)."""

    NONE = "none"
    PENDING = "pending"  # held until the user confirms on their primary device
    CONFIRMED = "confirmed"  # run: the user confirmed
    DECLINED = "declined"
    EXPIRED = "expired"
    TOUCH_MISMATCH = TOUCH_MISMATCH  # confirmed with someone else's swipes: refused
    TOUCH_MISSING = TOUCH_MISSING  # confirmed without swipes once the template exists: refused
    TOUCH_LOCKED = TOUCH_LOCKED  # the user's touch refusals reached the limit: refused

    @property
    def result(self) -> str:
        """The decision's `result` while the action is not run for this reason (a touch
        refusal says its own reason code: `touch_mismatch`, `touch_missing`, `touch_locked`)."""
        if self in TOUCH_REFUSED:
            return self.value
        return f"step_up_{self.value}"


TOUCH_REFUSED = frozenset({StepUp.TOUCH_MISMATCH, StepUp.TOUCH_MISSING, StepUp.TOUCH_LOCKED})
STEP_UP_STOPPED = frozenset({StepUp.PENDING, StepUp.DECLINED, StepUp.EXPIRED} | TOUCH_REFUSED)


@dataclass(frozen=True, slots=True)
class Plan:
    """What one event asks of its pool: a freeze (on a freeze verdict) and the event's own
    action, each None when there is none. Commands run freeze first."""

    verdict: Verdict
    freeze: Freeze | None
    command: Command | None  # the event's own action, if it has one
    action: Action
    amount_fen: int
    stepup: StepUp = StepUp.NONE
    approval: ApplicationDecision | None = None  # an application's decision, once made

    @property
    def commands(self) -> tuple[Command, ...]:
        return tuple(c for c in (self.freeze, self.command) if c is not None)


ACTING_LEVELS = frozenset({Level.ALLOW, Level.STEP_UP})
STEP_UP_CONFIRM = "confirm"  # [risk] step_up: a step_up verdict waits for the user
STEP_UP_ALLOW = "allow"  # [risk] step_up: a step_up verdict acts at once (the old behaviour)
HELD_PREFIX = "risk_"
"""The result of a trigger the risk verdict held back: risk_hold or risk_freeze."""


def held_result(level: Level) -> str:
    return HELD_PREFIX + level.value


def plan(
    event: m.Report | m.Trigger | m.Application,
    user: str,
    verdict: Verdict,
    cfg: BridgeConfig,
    stepup: StepUp = StepUp.NONE,
) -> Plan:
    """The event's pool commands under `verdict`. `stepup` is the step-up's outcome when the
    event is planned again after one (CONFIRMED runs the action; DECLINED / EXPIRED do not)."""
    base = f"{event.sender}:{event.seq}"
    freeze = None
    if verdict.level is Level.FREEZE:
        freeze = Freeze(
            user=user, key=f"{base}:freeze", reason="clone" if verdict.clone else "risk"
        )
    command: Command | None = None
    action, amount = Action.NONE, 0
    if isinstance(event, m.Application):
        action = Action.APPLY  # its command, if approved, comes from `approved`
    elif isinstance(event, m.Trigger):
        body = event.body
        if isinstance(body, m.RestockBody) and body.est_cost_fen > 0:
            action, amount = Action.HOLD, body.est_cost_fen
            command = PlaceHold(
                user=user,
                key=f"{base}:hold",
                hold_id=f"{event.sender}.{event.seq}",  # ids allow no colon
                amount_fen=amount,
                ttl_ms=cfg.hold_ttl_s * 1000,
            )
        elif isinstance(body, m.HealthStreakBody):
            action = Action.HEALTH_BOOST
            command = HealthGoalMet(user=user, key=f"{base}:health")
        elif isinstance(body, m.EvTierBody):
            action = Action.MILEAGE
            command = ReportMileage(user=user, key=f"{base}:mileage", km_per_month=body.km_30d)
        elif isinstance(body, m.TurnoverBody):
            action, amount = Action.TURNOVER, body.turnover_fen
            command = ReportTurnover(
                user=user,
                key=f"{base}:turnover",
                day=body.day,
                turnover_fen=body.turnover_fen,
            )
        elif isinstance(body, m.EmergencyBody):
            amount = body.amount_fen or cfg.emergency_amount(body.emergency)
            if amount > 0:
                action = Action.EMERGENCY_DRAW
                command = Draw(
                    user=user,
                    key=f"{base}:emergency",
                    amount_fen=amount,
                    emergency=Emergency(body.emergency),
                    up_to=not body.amount_fen,  # the default is a ceiling, not a demand
                )
    if verdict.level not in ACTING_LEVELS:
        command = None  # held back: the decision still names the action and its amount
    elif (
        verdict.level is Level.STEP_UP
        and command is not None
        and stepup is StepUp.NONE
        and cfg.risk_step_up == STEP_UP_CONFIRM
    ):
        command, stepup = None, StepUp.PENDING  # until the user confirms
    if stepup in STEP_UP_STOPPED:
        command = None
    return Plan(verdict, freeze, command, action, amount, stepup)


def approved(plan: Plan, user: str, key: str, decision: ApplicationDecision) -> Plan:
    """An application's plan with its decision: an approval opens the pool with the decided
    limit and rate (idempotency key `key`: the same application never opens twice)."""
    command = None
    if decision.outcome is ApprovalOutcome.APPROVE:
        command = OpenPool(
            user=user, key=key, limit_fen=decision.limit_fen, rate_bps=decision.rate_bps
        )
    return replace(plan, command=command, approval=decision, amount_fen=decision.limit_fen)


def application_result(plan: Plan, outcome: Outcome | None) -> str:
    """The decision's result of a decided application: approve, refer or decline; an approval
    whose opening the pool refused (a pool already open) says the pool's result code."""
    assert plan.approval is not None
    if outcome is not None and not outcome.ok:
        return outcome.result.value
    return plan.approval.outcome.value


def held(plan: Plan) -> bool:
    """The event asked for an action that its risk verdict held back."""
    return (
        plan.command is None
        and plan.action not in (Action.NONE, Action.INTERNAL_ERROR)
        and (plan.verdict.level not in ACTING_LEVELS or plan.stepup in STEP_UP_STOPPED)
    )


def failed(verdict: Verdict) -> Plan:
    """The plan of an event whose mapping raised: stored and decided, never acted on."""
    return Plan(verdict, None, None, Action.INTERNAL_ERROR, 0)


def settled(plan: Plan, outcomes: Mapping[str, Outcome]) -> Plan:
    """The plan with the amount its command moved, for the published decision: a draw of up
    to an amount takes what the policy allowed, which its `drawn` event says."""
    command = plan.command
    if not isinstance(command, Draw) or not command.up_to:
        return plan
    outcome = outcomes.get(command.key)
    if outcome is None or not outcome.ok:
        return plan  # refused or not run: the decision shows the ceiling it asked for
    for event in outcome.events:
        amount = event.data.get("amount_fen")
        if event.kind == "drawn" and isinstance(amount, int):
            return replace(plan, amount_fen=amount)
    return plan


def refusal(plan: Plan, outcomes: Mapping[str, Outcome]) -> Result | None:
    """The result code that refused the event's own command in this run, to be counted; None
    when it was done, had no command or did not run, or when the answer is a replay (counted
    when it was first given)."""
    outcome = outcomes.get(plan.command.key) if plan.command is not None else None
    if outcome is None or outcome.ok or outcome.replayed:
        return None
    return outcome.result


def granted_draw(outcome: Outcome) -> Event | None:
    """The `drawn` event of a draw the pool granted just now (not a replay of an earlier
    answer: that one's payout was made then), or None."""
    if not outcome.ok or outcome.replayed:
        return None
    return next((e for e in outcome.events if e.kind == "drawn"), None)

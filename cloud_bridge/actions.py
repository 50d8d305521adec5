"""From one accepted device event and its risk verdict to credit-pool commands.

    restock trigger   -> place a hold (the offer) for the estimated cost, expiring after hold_ttl_s
    health streak     -> health-goal limit boost
    EV mileage tier   -> report the 30-day mileage (the pool picks the rate tier)
    emergency         -> an expedited emergency draw (the device's amount, or the kind's default)
    freeze verdict    -> freeze the pool (any event)

Triggers act only on an allow or step_up verdict. Every command's idempotency key derives from
the event (device:seq:action), so a redelivered event can never act twice. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from cloud_bridge.config import BridgeConfig
from cloud_bridge.pool.commands import (
    Command,
    Draw,
    Emergency,
    Freeze,
    HealthGoalMet,
    PlaceHold,
    ReportMileage,
)
from cloud_bridge.risk.verdict import ALLOW, FREEZE, STEP_UP, Verdict
from protocol import messages as m


@dataclass(frozen=True)
class Plan:
    verdict: Verdict
    commands: tuple[Command, ...]
    action: str  # the event's own pool action, "none" if it has none
    amount_fen: int


def plan(event: m.Report | m.Trigger, user: str, verdict: Verdict, cfg: BridgeConfig) -> Plan:
    base = f"{event.sender}:{event.seq}"
    commands: list[Command] = []
    if verdict.decision == FREEZE:
        reason = (
            "clone"
            if any(r in verdict.reasons for r in ("seq_conflict", "boot_regression"))
            else "risk"
        )
        commands.append(Freeze(user=user, key=f"{base}:freeze", reason=reason))
    action, amount = "none", 0
    if isinstance(event, m.Trigger) and verdict.decision in (ALLOW, STEP_UP):
        body = event.body
        if isinstance(body, m.RestockBody) and body.est_cost_fen > 0:
            action, amount = "hold", body.est_cost_fen
            commands.append(
                PlaceHold(
                    user=user,
                    key=f"{base}:hold",
                    hold_id=f"{event.sender}.{event.seq}",  # ids allow no colon
                    amount_fen=amount,
                    ttl_ms=cfg.hold_ttl_s * 1000,
                )
            )
        elif isinstance(body, m.HealthStreakBody):
            action = "health_boost"
            commands.append(HealthGoalMet(user=user, key=f"{base}:health"))
        elif isinstance(body, m.EvTierBody):
            action = "mileage"
            commands.append(
                ReportMileage(user=user, key=f"{base}:mileage", km_per_month=body.km_30d)
            )
        elif isinstance(body, m.EmergencyBody):
            amount = body.amount_fen or cfg.emergency_amount(body.emergency)
            if amount > 0:
                action = "emergency_draw"
                commands.append(
                    Draw(
                        user=user,
                        key=f"{base}:emergency",
                        amount_fen=amount,
                        emergency=Emergency(body.emergency),
                    )
                )
    return Plan(verdict, tuple(commands), action, amount)

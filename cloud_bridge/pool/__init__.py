"""The credit-pool engine: a revolving credit line per user, its ledger and its rules.

Pure domain (no I/O): `commands`, `engine` (the state machine), `state`, `statements` (time:
interest, statements, raises), `trigger_limits` (budgets, cool-downs, mileage plausibility),
`ledger` (double-entry rules), `policy`, `view`, `results`, `merchant` (turnover-based limits),
`scorecard` and `approval` (automated approval).
Adapters: `service` (runs commands in a store transaction), `auditor`; their SQL is in
`cloud_bridge.store.pool_repo`.
See docs/credit-pool.md.
"""

from __future__ import annotations

from cloud_bridge.pool.commands import (
    COMMANDS,
    ClosePool,
    Command,
    ConfirmHold,
    Draw,
    Emergency,
    Freeze,
    HealthGoalMet,
    LifeEvent,
    LifeStage,
    OpenPool,
    PlaceHold,
    ReleaseHold,
    Repay,
    ReportMileage,
    ReportTurnover,
    SetLimit,
    Tick,
    Unfreeze,
)
from cloud_bridge.pool.errors import InvalidCommand, PolicyError, PoolError
from cloud_bridge.pool.events import Event
from cloud_bridge.pool.policy import Policy, load_policy
from cloud_bridge.pool.results import Result
from cloud_bridge.pool.service import Outcome, PoolService
from cloud_bridge.pool.state import Status
from cloud_bridge.pool.view import PoolView

__all__ = [
    "COMMANDS",
    "ClosePool",
    "Command",
    "ConfirmHold",
    "Draw",
    "Emergency",
    "Event",
    "Freeze",
    "HealthGoalMet",
    "InvalidCommand",
    "LifeEvent",
    "LifeStage",
    "OpenPool",
    "Outcome",
    "PlaceHold",
    "Policy",
    "PolicyError",
    "PoolError",
    "PoolService",
    "PoolView",
    "ReleaseHold",
    "Repay",
    "ReportMileage",
    "ReportTurnover",
    "Result",
    "SetLimit",
    "Status",
    "Tick",
    "Unfreeze",
    "load_policy",
]

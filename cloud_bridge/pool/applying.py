"""One application decided: what `cloud-bridge pool apply` and a phone's signed application
(`cloud_bridge.ingest`) both run, so the two can never decide differently.

`device_signals` reads the user's devices and risk history in the caller's transaction (through
the store's repositories); `application` scores and decides (pure: `approval.decide_application`
over the scorecard's `Score`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloud_bridge.device_state import ACTIVE
from cloud_bridge.pool.approval import ApplicationDecision, DeviceSignals, decide_application
from cloud_bridge.pool.policy import Policy
from cloud_bridge.pool.scorecard import Scorecard
from cloud_bridge.store import pool_repo, registry_repo
from cloud_bridge.store.base import Transaction

FROZEN_EVENT = "frozen"


def device_signals(tx: Transaction, user: str) -> DeviceSignals:
    """The user's devices in the registry and the risk freezes in the pool's history."""
    mine = [d for d in registry_repo.devices(tx) if d.user_id == user]
    freezes = sum(1 for _, e in pool_repo.events_of(tx, user) if e.kind == FROZEN_EVENT)
    return DeviceSignals(
        enrolled_ms=tuple(d.enrolled_ms for d in mine if d.status == ACTIVE),
        revoked=sum(1 for d in mine if d.status != ACTIVE),
        risk_freezes=freezes,
    )


def application(
    applicant: Mapping[str, Any],
    signals: DeviceSignals,
    card: Scorecard,
    now_ms: int,
    policy: Policy,
) -> ApplicationDecision:
    """Score and decide (pure: what `pool apply`, the bridge and the bench run)."""
    return decide_application(card.score(applicant), signals, now_ms, policy)

"""Approval suite: how long an automated credit decision takes (the goal: under 50 ms; the
source product claims 8.2 s).

Workload: the 300 held-out applicants of the scorecard (models/scorecard-v1.holdout.json), each
with one enrolled phone. "score + decide" is the pure part (scorecard and rules); "apply" is what
`cloud-bridge pool apply` does after loading its files: read the user's devices and pool history
from SQLite, decide, and open the pool of an approved applicant (a committed transaction, fsync
on commit). Figures are the 50th and 99th percentile of single decisions, in milliseconds.
"""

from __future__ import annotations

import json
import secrets
import statistics
import time

from cloud_bridge.pool import commands as c
from cloud_bridge.pool.applying import application, device_signals
from cloud_bridge.pool.approval import DeviceSignals, Outcome
from cloud_bridge.pool.policy import Policy
from cloud_bridge.pool.scorecard import DEFAULT_SCORECARD, load_scorecard
from cloud_bridge.pool.service import PoolService
from cloud_bridge.store import open_store, registry_repo
from cloud_bridge.store.registry_repo import Device
from protocol.replay import ReplayWindow
from tools.bench.common import Context, Figure

GOAL_MS = 50
T0 = 1_700_000_000_000


def _applicants() -> list[dict[str, object]]:
    holdout = json.loads(DEFAULT_SCORECARD.with_suffix(".holdout.json").read_text())
    return [dict(zip(holdout["columns"], row, strict=True)) for row in holdout["rows"]]


def _percentiles(samples_ms: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples_ms, n=100, method="inclusive")
    return round(cuts[49], 3), round(cuts[98], 3)


def run(ctx: Context) -> list[Figure]:
    policy, card, applicants = Policy(), load_scorecard(), _applicants()
    rounds = 3 if ctx.quick else 20
    ctx.progress(f"score + decide, {len(applicants)} applicants x {rounds}")
    pure: list[float] = []
    signals = DeviceSignals(enrolled_ms=(T0 - 90 * 86_400_000,))
    for _ in range(rounds):
        for applicant in applicants:
            start = time.perf_counter()
            application(applicant, signals, card, T0, policy)
            pure.append((time.perf_counter() - start) * 1000)
    ctx.progress("apply through SQLite: read devices and history, decide, open the pool")
    path = ctx.workdir / f"approval-{secrets.token_hex(4)}.sqlite3"
    store = open_store(str(path))
    empty = ReplayWindow().to_bytes()
    with store.transaction() as tx:
        for i in range(len(applicants)):
            device = Device(f"phone-{i}", "f1", f"user-{i}", "phone", "active", {}, {}, 1, 1)
            registry_repo.insert_device(tx, device, empty, empty)
    service = PoolService(store, policy, clock=lambda: T0)
    full: list[float] = []
    approved = 0
    for i, applicant in enumerate(applicants):
        start = time.perf_counter()
        user = f"user-{i}"
        with store.transaction() as tx:
            found = device_signals(tx, user)
        decision = application(applicant, found, card, T0, policy)
        if decision.outcome is Outcome.APPROVE:
            approved += 1
            service.execute(
                c.OpenPool(
                    user=user,
                    key=f"apply-{user}",
                    limit_fen=decision.limit_fen,
                    rate_bps=decision.rate_bps,
                )
            )
        full.append((time.perf_counter() - start) * 1000)
    store.close()
    p50, p99 = _percentiles(pure)
    a50, a99 = _percentiles(full)
    note = f"{approved} of {len(applicants)} approved; registry of {len(applicants)} devices"
    return [
        Figure("approval", "score + decide (pure), p50", p50, "ms", f"<= {GOAL_MS}"),
        Figure("approval", "score + decide (pure), p99", p99, "ms", f"<= {GOAL_MS}"),
        Figure("approval", "apply via SQLite, p50", a50, "ms", f"<= {GOAL_MS}", note=note),
        Figure("approval", "apply via SQLite, p99", a99, "ms", f"<= {GOAL_MS}", note=note),
    ]

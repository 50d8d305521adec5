"""Scheduled pool life (issue 16 item 4): statements close, holds expire, interest is billed,
raises and merchant reviews happen on time, without waiting for the pool's next command.

The engine is lazy (cloud_bridge.pool.statements.catch_up): a `Tick` makes time's changes up to
now. Every pool row carries `due_ms`, when time alone next changes it (`next_due_ms`, written
with every change of the pool). A round of the scheduler, in one transaction:

1. claims up to `batch` pools whose `due_ms` has passed (`pool_repo.claim_due`: on PostgreSQL
   the rows are locked with SKIP LOCKED, so several schedulers split the due pools and
   never wait for each other; SQLite has one writer at a time);
2. runs a `Tick` on each, with the idempotency key `tick:<due_ms>`: one key per pool and due
   time (the statement date, expiry or review it is for), so the pool engine's command log
   answers a second tick for the same work with the first one's outcome instead of applying
   it again;
3. writes each change's signed PoolEvents and PoolState into the outbox (`publish`), and the
   pools' new `due_ms` with the change itself;
4. commits. A scheduler killed before the commit leaves nothing behind: its row locks go with
   its connection and the next round (its own after a restart, or another scheduler's) does
   the same work once. One that commits has done it, and marked it done, in that same commit.

Exactly once therefore rests on the transaction and the pool's own rules (a statement date
passes once; a hold expires once), and the key makes a repeat harmless besides.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cloud_bridge.pool.commands import Tick
from cloud_bridge.pool.service import ATTEMPTS, Outcome, PoolService
from cloud_bridge.pool.statements import next_due_ms
from cloud_bridge.store import pool_repo as repo
from cloud_bridge.store.base import Transaction
from cloud_bridge.store.errors import StoreConflict

log = logging.getLogger(__name__)

BATCH = 200
"""Pools one round claims at most: one transaction, so a bounded one."""
RETRY_MS = 1_000
"""When a tick changed nothing, the pool is looked at again no sooner than this (a defence: a
due time that a tick does not act on would otherwise be claimed at every round)."""

Publish = Callable[[Transaction, Sequence[Outcome]], int]
"""Writes what the changes publish into the outbox in the round's transaction; returns how many
outputs it wrote."""


def tick_key(due_ms: int) -> str:
    """The idempotency key of the tick for the work due at `due_ms` (unique per pool)."""
    return f"tick:{due_ms}"


@dataclass(frozen=True)
class Round:
    """What one round did: pools claimed, pools changed, events made, outputs written."""

    claimed: int = 0
    changed: int = 0
    events: int = 0
    outputs: int = 0


class Scheduler:
    """Rounds of due work against the service's store, on the service's clock (injected)."""

    def __init__(
        self,
        service: PoolService,
        publish: Publish | None = None,
        batch: int = BATCH,
        rolled_back: Callable[[], None] = lambda: None,
    ) -> None:
        self.service = service
        self.publish = publish
        self.batch = batch
        self.rolled_back = rolled_back  # e.g. Publisher.invalidate: its block may be gone

    def run_once(self) -> Round:
        """One round in one transaction (retried on a conflict)."""
        for attempt in range(ATTEMPTS):
            try:
                with self.service.store.transaction() as tx:
                    return self._round(tx)
            except StoreConflict:
                self.rolled_back()
                if attempt == ATTEMPTS - 1:
                    raise
                time.sleep(random.uniform(0, 0.002 * 2**attempt))  # full jitter
        raise AssertionError("unreachable")

    def _round(self, tx: Transaction) -> Round:
        now = self.service.clock()
        due = repo.claim_due(tx, now, self.batch)
        if not due:
            return Round()
        outcomes = self.service.execute_many(
            [Tick(user=user, key=tick_key(due_ms)) for user, due_ms in due], tx=tx
        )
        changed = [o for o in outcomes if o.events and not o.replayed]
        for outcome in outcomes:
            if outcome.events and not outcome.replayed:
                continue  # its new due_ms was written with the change
            state = repo.load(tx, outcome.user)
            if state is not None:
                repo.set_due(tx, outcome.user, max(next_due_ms(state), now + RETRY_MS))
        written = self.publish(tx, changed) if self.publish is not None and changed else 0
        return Round(len(due), len(changed), sum(len(o.events) for o in changed), written)

    def run(self, stop: threading.Event, interval_s: float = 1.0) -> None:
        """Rounds until `stop` is set: at once while a round finds a full batch, else every
        `interval_s`. A failing database is logged and tried again at the next interval."""
        while not stop.is_set():
            try:
                done = self.run_once()
            except Exception:  # the database failed: log it and try again, never stop
                self.rolled_back()
                log.exception("scheduler: round failed")
                done = Round()
            if done.claimed:
                log.info(
                    "scheduler: %d pools due, %d changed, %d events, %d outputs",
                    done.claimed, done.changed, done.events, done.outputs,
                )  # fmt: skip
            if done.claimed < self.batch:
                stop.wait(interval_s)

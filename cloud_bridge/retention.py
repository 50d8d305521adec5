"""Retention: how long `rejections`, `events` and `session_events` keep their rows, and the
bridge's pruning rounds.

    Retention.of(cfg).cutoffs(now_ms)  pure: the received-before time of each table (or None)
    Pruner.step()                      a round when one is due: at most `batch_rows` deleted per
                                       table, in one short transaction; the next round comes at
                                       once while a table has more to delete, else after
                                       `interval_s`

What is never pruned: the pool tables (the journal and the ledger) and the device rows, whose
replay windows are all that deduplication needs, so a resend of a pruned event is still a
counted duplicate. An event older than its retention can no longer be compared with a reused
number's content (a seq conflict is then refused as a plain duplicate): keep `events_days`
far longer than any device stays offline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from cloud_bridge.config import BridgeConfig
from cloud_bridge.store import StoreError
from cloud_bridge.store import retention_repo as repo
from cloud_bridge.store.base import Store

log = logging.getLogger(__name__)
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """Rows received before these times (ms since the epoch) go; None: kept whatever their age."""

    rejections: int | None
    events: int | None
    session_events: int | None


@dataclass(frozen=True, slots=True)
class Retention:
    rejections_days: int  # 0: any age
    rejections_max_rows: int  # 0: any number
    events_days: int  # 0: for ever
    session_events_days: int  # 0: for ever
    batch_rows: int
    interval_s: float

    @classmethod
    def of(cls, cfg: BridgeConfig) -> Retention:
        return cls(
            cfg.rejections_days, cfg.rejections_max_rows, cfg.events_days,
            cfg.session_events_days, cfg.prune_batch_rows, float(cfg.prune_interval_s),
        )  # fmt: skip

    def cutoffs(self, now_ms: int) -> Cutoffs:
        def before(days: int) -> int | None:
            return now_ms - days * DAY_MS if days else None

        return Cutoffs(
            before(self.rejections_days), before(self.events_days), before(self.session_events_days)
        )


@dataclass(frozen=True, slots=True)
class Pruned:
    """Rows one round deleted, per table."""

    rejections: int = 0
    events: int = 0
    session_events: int = 0
    stepups: int = 0  # settled step-ups, kept as long as the events they held

    def by_table(self) -> dict[str, int]:
        return {
            "rejections": self.rejections,
            "events": self.events,
            "session_events": self.session_events,
            "stepups": self.stepups,
        }

    def full(self, batch_rows: int) -> bool:
        """Whether some table filled its batch (it may have more to delete)."""
        return max(self.by_table().values()) >= batch_rows


def prune_round(store: Store, retention: Retention, now_ms: int) -> Pruned:
    """One round: at most `batch_rows` rows deleted per table (the rejections' age and count
    limits share one batch), in one transaction."""
    cut = retention.cutoffs(now_ms)
    limit = retention.batch_rows
    with store.transaction() as tx:
        rejections = 0
        if cut.rejections is not None:
            rejections = repo.prune_rejections_before(tx, cut.rejections, limit)
        if retention.rejections_max_rows and rejections < limit:
            rejections += repo.prune_rejections_beyond(
                tx, retention.rejections_max_rows, limit - rejections
            )
        events = stepups = 0
        if cut.events is not None:
            events = repo.prune_log(tx, "events", cut.events, limit)
            stepups = repo.prune_settled_stepups(tx, cut.events, limit)
        session = 0
        if cut.session_events is not None:
            session = repo.prune_log(tx, "session_events", cut.session_events, limit)
    return Pruned(rejections, events, session, stepups)


class Pruner:
    """Runs `prune_round` on the bridge's worker thread when due; `wall_ms` for the cutoffs,
    `mono_s` for the schedule (both injected for tests)."""

    def __init__(
        self,
        store: Store,
        retention: Retention,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        mono_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.retention = retention
        self.wall_ms = wall_ms
        self.mono_s = mono_s
        self._due = mono_s()  # a first round at start: a bridge that was down catches up

    def step(self) -> Pruned | None:
        """A round if one is due (None if not). A failed round (the database busy or gone) is
        logged and tried again after the interval; it never stops the bridge."""
        now = self.mono_s()
        if now < self._due:
            return None
        try:
            pruned = prune_round(self.store, self.retention, self.wall_ms())
        except StoreError as exc:
            log.warning("retention: pruning failed (%s); trying again in %.0f s", exc,
                        self.retention.interval_s)  # fmt: skip
            self._due = now + self.retention.interval_s
            return None
        more = pruned.full(self.retention.batch_rows)
        self._due = now if more else now + self.retention.interval_s
        return pruned

"""PoolService: runs commands against a store, one pool row lock and one transaction at a time.

    service = PoolService(open_store(url), policy=load_policy(path))
    outcome = service.execute(Draw(user="u1", key="dev-7:1234", amount_fen=5_000))
    with store.transaction() as tx:              # the bridge's own writes in the same transaction
        outcomes = service.execute_many(batch, tx=tx)

For each command: lock the pool row, look up the idempotency key (a retry returns the recorded
outcome, marked `replayed`), let the pure engine decide, then write the new state, its events,
its journal entry and the outcome, all in the caller's transaction (or one of its own).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cloud_bridge.pool import repository as repo
from cloud_bridge.pool.commands import Command, check_user
from cloud_bridge.pool.engine import decide
from cloud_bridge.pool.events import Event
from cloud_bridge.pool.policy import Policy
from cloud_bridge.pool.results import Result
from cloud_bridge.pool.view import PoolView
from cloud_bridge.store.base import Store, Transaction
from cloud_bridge.store.errors import StoreConflict

Clock = Callable[[], int]
ATTEMPTS = 8


def wall_clock_ms() -> int:
    """Milliseconds since the Unix epoch: the default clock (tests inject their own)."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Outcome:
    """What one command did. `view` is the pool after it (None if the pool does not exist);
    `replayed` means the key had been seen and this is the recorded outcome of the first run."""

    user: str
    key: str
    kind: str
    result: Result
    view: PoolView | None
    events: tuple[Event, ...] = ()
    replayed: bool = False

    @property
    def ok(self) -> bool:
        return self.result is Result.OK

    def to_json(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "key": self.key,
            "kind": self.kind,
            "result": self.result.value,
            "view": None if self.view is None else self.view.to_json(),
            "events": [e.to_json() for e in self.events],
            "replayed": self.replayed,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], *, replayed: bool = False) -> Outcome:
        return cls(
            user=data["user"],
            key=data["key"],
            kind=data["kind"],
            result=Result(data["result"]),
            view=None if data["view"] is None else PoolView.from_json(data["view"]),
            events=tuple(Event.from_json(e) for e in data["events"]),
            replayed=replayed,
        )


class _NewPoolRace(Exception):
    """Another transaction created the same pool first: run the command again."""


class PoolService:
    """Commands against one store. `clock` returns ms since the epoch (injected for tests)."""

    def __init__(self, store: Store, policy: Policy | None = None, clock: Clock = wall_clock_ms):
        self.store = store
        self.policy = policy or Policy()
        self.clock = clock

    def execute(self, command: Command, *, tx: Transaction | None = None) -> Outcome:
        """Run one command in `tx`, or in a transaction of its own (retried on conflicts)."""
        return self.execute_many([command], tx=tx)[0]

    def execute_many(
        self, commands: Sequence[Command], *, tx: Transaction | None = None
    ) -> list[Outcome]:
        """Run commands in order in one transaction (`tx`, or one of its own). Pool rows are
        locked in user order first, so two batches touching the same pools cannot deadlock."""
        if tx is not None:
            return self._batch(tx, commands)
        for attempt in range(ATTEMPTS):
            try:
                with self.store.transaction() as own:
                    return self._batch(own, commands)
            except StoreConflict:
                if attempt == ATTEMPTS - 1:
                    raise
                time.sleep(random.uniform(0, 0.002 * 2**attempt))  # full jitter
        raise AssertionError("unreachable")

    def get(self, user: str, *, tx: Transaction | None = None) -> PoolView | None:
        """The pool as stored (as of its last change), or None."""
        check_user(user)
        if tx is not None:
            state = repo.load(tx, user)
        else:
            with self.store.transaction() as own:
                state = repo.load(own, user)
        return None if state is None else PoolView.of(state)

    def views(self, *, tx: Transaction | None = None) -> list[PoolView]:
        """Every pool, by user id."""
        if tx is not None:
            return [PoolView.of(s) for s in repo.all_states(tx)]
        with self.store.transaction() as own:
            return [PoolView.of(s) for s in repo.all_states(own)]

    def _batch(self, tx: Transaction, commands: Sequence[Command]) -> list[Outcome]:
        users = sorted({c.user for c in commands})
        if len(users) > 1:
            repo.lock_many(tx, users)
        out = []
        for command in commands:
            try:
                out.append(self._run(tx, command))
            except _NewPoolRace:
                out.append(self._run(tx, command))
        return out

    def _run(self, tx: Transaction, command: Command) -> Outcome:
        user, key = command.user, command.key
        state, prior = repo.load_for_command(tx, user, key)
        fingerprint = command.fingerprint()
        if state is not None and prior is not None:
            if prior[0] == fingerprint:
                return Outcome.from_json(prior[1], replayed=True)
            return Outcome(user, key, command.KIND, Result.KEY_REUSED, PoolView.of(state))
        now = self.clock()
        decision = decide(state, command, now, self.policy)
        after = decision.state
        if decision.changed:
            assert after is not None
            if not repo.save(tx, state, after):
                raise _NewPoolRace
            repo.append_events(tx, user, after.version, decision.events)
            if decision.postings:
                repo.append_postings(tx, user, after.version, decision.postings, now)
        outcome = Outcome(
            user,
            key,
            command.KIND,
            decision.result,
            None if after is None else PoolView.of(after),
            decision.events,
        )
        if after is not None:
            # No pool, nothing changed, nothing to lock: a retry after opening runs anew.
            repo.record_command(
                tx, user, key, command.KIND, fingerprint, decision.result.value,
                after.version, now, outcome.to_json(),
            )  # fmt: skip
        return outcome

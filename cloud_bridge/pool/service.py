"""PoolService: runs commands against a store, one pool row lock and one transaction at a time.

    service = PoolService(open_store(url), policy=load_policy(path))
    outcome = service.execute(Draw(user="u1", key="dev-7:1234", amount_fen=5_000))
    with store.transaction() as tx:              # the bridge's own writes in the same transaction
        outcomes = service.execute_many(batch, tx=tx)

A batch first locks its pools in user order and reads them with one query, then reads the
commands already recorded under its idempotency keys with another (a retry returns the recorded
outcome, marked `replayed`). The pure engine decides each command in turn on the states in
memory; at the end the new states, the events, the journal entries and the outcomes are written
together (one statement on PostgreSQL), all in the caller's transaction (or one of its own).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cloud_bridge.pool.commands import Command, check_user
from cloud_bridge.pool.engine import decide
from cloud_bridge.pool.events import Event
from cloud_bridge.pool.policy import Policy
from cloud_bridge.pool.results import Result
from cloud_bridge.pool.view import PoolView
from cloud_bridge.store import pool_repo as repo
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
        batch = _Batch(tx, commands, self.policy, self.clock)
        outcomes = [batch.run(command) for command in commands]
        batch.save()
        return outcomes


class _Batch:
    """One batch of commands in one transaction: its pools locked and read, and the commands
    recorded under its keys read, up front (one query each); the states as the batch leaves
    them, kept here between commands; what is still to write, written by `save`."""

    def __init__(
        self, tx: Transaction, commands: Sequence[Command], policy: Policy, clock: Clock
    ) -> None:
        self._tx, self._commands, self._policy, self._clock = tx, commands, policy, clock
        self._states = repo.lock_pools(tx, {c.user for c in commands})
        self._stored = {user: state.version for user, state in self._states.items()}
        self._recorded = repo.recorded_commands(tx, {(c.user, c.key) for c in commands})
        self._changes: list[repo.PoolChange] = []
        self._records: list[repo.CommandRecord] = []

    def run(self, command: Command) -> Outcome:
        user, key = command.user, command.key
        state = self._states.get(user)
        prior = self._recorded.get((user, key))
        fingerprint = command.fingerprint()
        if state is not None and prior is not None:
            if prior.fingerprint == fingerprint:
                return Outcome.from_json(dict(prior.outcome), replayed=True)
            return Outcome(user, key, command.KIND, Result.KEY_REUSED, PoolView.of(state))
        now = self._clock()
        decision = decide(state, command, now, self._policy)
        after = decision.state
        if decision.changed:
            assert after is not None
            if state is None:
                if not repo.insert_pool(self._tx, after):
                    self._reread(user)  # another transaction opened it first
                    return self.run(command)
                self._stored[user] = after.version
            self._states[user] = after
            self._changes.append(
                repo.PoolChange(after, decision.events, decision.postings or {}, now)
            )
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
            doc = outcome.to_json()
            row = repo.CommandRecord(
                user, key, command.KIND, fingerprint, decision.result.value, after.version,
                now, doc,
            )  # fmt: skip
            self._records.append(row)
            self._recorded[(user, key)] = repo.Recorded(fingerprint, doc)
        return outcome

    def _reread(self, user: str) -> None:
        """Lock and read a pool that another transaction created after this batch's read,
        and the commands recorded under this batch's keys for it."""
        self._states.update(repo.lock_pools(self._tx, [user]))
        self._stored[user] = self._states[user].version
        keys = {(c.user, c.key) for c in self._commands if c.user == user}
        self._recorded.update(repo.recorded_commands(self._tx, keys))

    def save(self) -> None:
        repo.save_batch(self._tx, self._stored, self._changes, self._records)

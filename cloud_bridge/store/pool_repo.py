"""The pool tables (migration 001_pool.sql): all of the credit pool's SQL, and no rules.

Both dialects, `?` placeholders. A batch of commands reads what it needs with one query per
table (`lock_pools`, then `recorded_commands`) and writes with one statement per table
(`save_batch`); only a pool that a batch opens is written at once (`insert_pool`), because
whether another transaction created it first decides what the command does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from cloud_bridge.pool.events import Event
from cloud_bridge.pool.ledger import COMMITMENT, Account
from cloud_bridge.pool.state import PoolState
from cloud_bridge.store.base import Transaction
from cloud_bridge.store.errors import StoreConflict

CHUNK = 500
"""Values per `IN (...)` list or rows per INSERT: a whole batch in one round trip, well under
the parameter limits of both databases."""

_POOL_COLUMNS = (
    "status", "limit_fen", "available_fen", "outstanding_fen", "held_fen", "interest_fen",
    "rate_bps", "version", "updated_ms", "state",
)  # fmt: skip
"""The pools columns a write sets besides user_id: the query columns, then the state JSON."""


@dataclass(frozen=True)
class Recorded:
    """A command recorded under an idempotency key: its fingerprint and its outcome (JSON)."""

    fingerprint: str
    outcome: Mapping[str, Any]


@dataclass(frozen=True)
class CommandRecord:
    """One row of pool_commands: what a command did, for a retry with the same key."""

    user: str
    key: str
    kind: str
    fingerprint: str
    result: str
    version: int
    ts_ms: int
    outcome: Mapping[str, Any]


@dataclass(frozen=True)
class PoolChange:
    """One change of a pool: the state it produced (its version names the change), the events
    and the journal entry."""

    state: PoolState
    events: tuple[Event, ...]
    postings: Mapping[Account, int]
    ts_ms: int


def _dumps(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


T = TypeVar("T")


def _chunks(values: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def load(tx: Transaction, user: str) -> PoolState | None:
    """The pool's state as stored, or None (no lock)."""
    row = tx.fetchone("SELECT state FROM pools WHERE user_id = ?", (user,))
    return None if row is None else PoolState.from_json(json.loads(row[0]))


def lock_pools(tx: Transaction, users: Iterable[str]) -> dict[str, PoolState]:
    """The states of these pools (those that exist), locked until the transaction ends.

    One query per `CHUNK` users. On PostgreSQL the rows are locked FOR UPDATE in user order
    (its LockRows step runs after the sort), the same order in every process, so two
    transactions that touch the same pools cannot deadlock; SQLite's BEGIN IMMEDIATE already
    holds the whole database."""
    lock = " FOR UPDATE" if tx.dialect == "postgres" else ""
    out: dict[str, PoolState] = {}
    for chunk in _chunks(sorted(set(users))):
        for (state_json,) in tx.fetchall(
            f"SELECT state FROM pools WHERE user_id IN ({_marks(len(chunk))})"
            f" ORDER BY user_id{lock}",
            chunk,
        ):
            state = PoolState.from_json(json.loads(state_json))
            out[state.user] = state
    return out


def recorded_commands(
    tx: Transaction, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], Recorded]:
    """The commands recorded under these (user, idempotency key) pairs, by pair. Read after
    `lock_pools`, so that on PostgreSQL it sees what the last holder of a lock committed."""
    wanted = sorted(set(keys))
    out: dict[tuple[str, str], Recorded] = {}
    for chunk in _chunks(wanted):
        users = sorted({user for user, _ in chunk})
        idem = sorted({key for _, key in chunk})
        rows = tx.fetchall(
            "SELECT user_id, idem_key, fingerprint, outcome FROM pool_commands"
            f" WHERE user_id IN ({_marks(len(users))}) AND idem_key IN ({_marks(len(idem))})",
            [*users, *idem],
        )
        pairs = set(chunk)
        for user, key, fingerprint, outcome in rows:
            if (user, key) in pairs:  # the query matches every user with every key
                out[(user, key)] = Recorded(fingerprint, json.loads(outcome))
    return out


def _columns(s: PoolState) -> tuple[Any, ...]:
    return (
        s.status.value,
        s.limit_fen,
        s.available_fen,
        s.outstanding_fen,
        s.held_fen,
        s.interest_fen,
        s.rate_bps,
        s.version,
        s.updated_ms,
        _dumps(s.to_json()),
    )


def insert_pool(tx: Transaction, state: PoolState) -> bool:
    """Create a pool's row (its lock held until the transaction ends). False if another
    transaction created it first: the caller locks the stored one and decides again."""
    names = ", ".join(_POOL_COLUMNS)
    return (
        tx.execute(
            f"INSERT INTO pools ({names}, user_id) VALUES ({_marks(len(_POOL_COLUMNS) + 1)})"
            " ON CONFLICT (user_id) DO NOTHING",
            (*_columns(state), state.user),
        )
        == 1
    )


def save_batch(
    tx: Transaction,
    stored_versions: Mapping[str, int],
    changes: Sequence[PoolChange],
    records: Sequence[CommandRecord],
) -> None:
    """Write a batch: each changed pool's last state over the version stored for it (one
    UPDATE for all of them), then every change's events and postings and every command
    record (one INSERT per table). StoreConflict if a stored version moved, which the row
    locks of `lock_pools` make impossible unless a caller skipped them."""
    last = {change.state.user: change.state for change in changes}
    moved = [s for user, s in sorted(last.items()) if s.version != stored_versions[user]]
    for chunk in _chunks(moved):
        _update_pools(tx, stored_versions, chunk)
    _insert_rows(
        tx,
        "pool_events (user_id, version, seq, kind, at_ms, data)",
        [
            (ch.state.user, ch.state.version, i, e.kind, e.at_ms, _dumps(dict(e.data)))
            for ch in changes
            for i, e in enumerate(ch.events)
        ],
    )
    _insert_rows(
        tx,
        "pool_postings (user_id, version, account, amount_fen, ts_ms)",
        [
            (ch.state.user, ch.state.version, account.value, amount, ch.ts_ms)
            for ch in changes
            for account, amount in sorted(ch.postings.items())
        ],
    )
    _insert_rows(
        tx,
        "pool_commands (user_id, idem_key, kind, fingerprint, result, version, ts_ms, outcome)",
        [
            (r.user, r.key, r.kind, r.fingerprint, r.result, r.version, r.ts_ms, _dumps(r.outcome))
            for r in records
        ],
    )


def _update_pools(
    tx: Transaction, stored_versions: Mapping[str, int], states: Sequence[PoolState]
) -> None:
    """One UPDATE ... FROM a VALUES list (SQLite 3.33+ and PostgreSQL). Both name the list's
    columns column1, column2, ...; the statement starts with UPDATE so that Python's sqlite3
    reports the rows it changed."""
    row = f"({_marks(len(_POOL_COLUMNS) + 2)})"
    sets = ", ".join(f"{name} = v.column{i}" for i, name in enumerate(_POOL_COLUMNS, start=3))
    changed = tx.execute(
        f"UPDATE pools SET {sets} FROM (VALUES {', '.join(row for _ in states)}) AS v"
        " WHERE pools.user_id = v.column1 AND pools.version = v.column2",
        [value for s in states for value in (s.user, stored_versions[s.user], *_columns(s))],
    )
    if changed != len(states):
        raise StoreConflict(
            f"{len(states) - changed} of {len(states)} pools changed under this transaction;"
            " retry it"
        )


def _insert_rows(tx: Transaction, table: str, rows: list[tuple[Any, ...]]) -> None:
    """Multi-row INSERTs, `CHUNK` rows each (one round trip for a whole batch)."""
    for chunk in _chunks(rows):
        row = f"({_marks(len(chunk[0]))})"
        tx.execute(
            f"INSERT INTO {table} VALUES {', '.join(row for _ in chunk)}",
            [value for r in chunk for value in r],
        )


def all_states(tx: Transaction) -> list[PoolState]:
    """Every pool, by user id."""
    rows = tx.fetchall("SELECT state FROM pools ORDER BY user_id")
    return [PoolState.from_json(json.loads(r[0])) for r in rows]


def count_pools(tx: Transaction) -> int:
    return int(tx.scalar("SELECT COUNT(*) FROM pools"))


def events_of(tx: Transaction, user: str, since_version: int = 0) -> list[tuple[int, Event]]:
    """(version, event) of a pool after `since_version`, oldest first."""
    rows = tx.fetchall(
        "SELECT version, kind, at_ms, data FROM pool_events WHERE user_id = ? AND version > ?"
        " ORDER BY version, seq",
        (user, since_version),
    )
    return [(int(v), Event(kind, int(at), json.loads(data))) for v, kind, at, data in rows]


@dataclass(frozen=True)
class StoredPool:
    """A pools row as stored: the query columns and the state JSON, not yet trusted."""

    user: str
    columns: tuple[Any, ...]  # status, limit_fen, ..., updated_ms: `_POOL_COLUMNS` less state
    state_json: str


@dataclass(frozen=True)
class Books:
    """What the auditor reads: every entry that does not balance (user, version, commitment
    sum, funds sum), each pool's account balances, the versions its events cover (count,
    highest), the highest version its command records claim, and every pool row."""

    unbalanced: list[tuple[str, int, int, int]]
    balances: dict[str, dict[str, int]]
    event_versions: dict[str, tuple[int, int]]
    command_versions: dict[str, int]
    pools: list[StoredPool]


_MEMO = ", ".join(f"'{a.value}'" for a in sorted(COMMITMENT))
_IN_MEMO = f"CASE WHEN account IN ({_MEMO}) THEN amount_fen ELSE 0 END"
_IN_FUNDS = f"CASE WHEN account IN ({_MEMO}) THEN 0 ELSE amount_fen END"


def read_books(tx: Transaction) -> Books:
    """Everything `cloud_bridge.pool.auditor` checks, in five queries."""
    unbalanced = [
        (str(user), int(version), int(memo), int(funds))
        for user, version, memo, funds in tx.fetchall(
            f"SELECT user_id, version, SUM({_IN_MEMO}), SUM({_IN_FUNDS})"
            " FROM pool_postings GROUP BY user_id, version"
            f" HAVING SUM({_IN_MEMO}) <> 0 OR SUM({_IN_FUNDS}) <> 0"
        )
    ]
    balances: dict[str, dict[str, int]] = {}
    for user, account, total in tx.fetchall(
        "SELECT user_id, account, SUM(amount_fen) FROM pool_postings GROUP BY user_id, account"
    ):
        balances.setdefault(str(user), {})[str(account)] = int(total)
    event_versions = {
        str(user): (int(n), int(top))
        for user, n, top in tx.fetchall(
            "SELECT user_id, COUNT(DISTINCT version), MAX(version) FROM pool_events"
            " GROUP BY user_id"
        )
    }
    command_versions = {
        str(user): int(top)
        for user, top in tx.fetchall(
            "SELECT user_id, MAX(version) FROM pool_commands GROUP BY user_id"
        )
    }
    pools = [
        StoredPool(str(row[0]), tuple(row[1:-1]), str(row[-1]))
        for row in tx.fetchall(f"SELECT user_id, {', '.join(_POOL_COLUMNS)} FROM pools")
    ]
    return Books(unbalanced, balances, event_versions, command_versions, pools)

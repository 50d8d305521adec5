"""The pool tables (migration 001_pool.sql): all of the credit pool's SQL, and no rules.

A batch of commands reads what it needs with one query per table (`lock_pools`, then
`recorded_commands`) and writes everything at the end (`save_batch`); only a pool that a batch
opens is written at once (`insert_pool`), because whether another transaction created it first
decides what the command does. On PostgreSQL all of a batch's writes are one statement, one
round trip, whose rows travel as one JSON parameter per table (so the statement has one fixed
text, prepared once). SQLite runs in the process, where plain per-row statements cost no round
trip.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cloud_bridge.pool.events import Event
from cloud_bridge.pool.ledger import COMMITMENT, Account
from cloud_bridge.pool.state import PoolState
from cloud_bridge.pool.statements import next_due_ms
from cloud_bridge.store.base import Transaction
from cloud_bridge.store.batching import chunks, marks
from cloud_bridge.store.errors import StoreConflict

_POOL_COLUMNS = (
    ("status", "text"), ("limit_fen", "bigint"), ("available_fen", "bigint"),
    ("outstanding_fen", "bigint"), ("held_fen", "bigint"), ("interest_fen", "bigint"),
    ("rate_bps", "integer"), ("version", "bigint"), ("updated_ms", "bigint"),
    ("due_ms", "bigint"), ("state", "text"),
)  # fmt: skip
"""The pools columns a write sets besides user_id (the query columns, when time next changes
the pool, then the state JSON), with their PostgreSQL types."""
_EVENT_COLUMNS = (
    ("user_id", "text"), ("version", "bigint"), ("seq", "integer"), ("kind", "text"),
    ("at_ms", "bigint"), ("data", "text"),
)  # fmt: skip
_POSTING_COLUMNS = (
    ("user_id", "text"), ("version", "bigint"), ("account", "text"), ("amount_fen", "bigint"),
    ("ts_ms", "bigint"),
)  # fmt: skip
_COMMAND_COLUMNS = (
    ("user_id", "text"), ("idem_key", "text"), ("kind", "text"), ("fingerprint", "text"),
    ("result", "text"), ("version", "bigint"), ("ts_ms", "bigint"), ("outcome", "text"),
)  # fmt: skip
Columns = tuple[tuple[str, str], ...]


def _names(columns: Columns) -> str:
    return ", ".join(name for name, _ in columns)


def _insert(table: str, columns: Columns) -> str:
    """One row's INSERT (SQLite)."""
    return f"INSERT INTO {table} ({_names(columns)}) VALUES ({marks(len(columns))})"


def _recordset(columns: Columns, alias: str) -> str:
    """A PostgreSQL row source from one parameter: a JSON array of objects, one per row."""
    return f"json_to_recordset(?::json) AS {alias}({', '.join(f'{n} {t}' for n, t in columns)})"


def _bulk_insert(table: str, columns: Columns) -> str:
    """All rows' INSERT (PostgreSQL), from one `_recordset` parameter."""
    names = _names(columns)
    return f"INSERT INTO {table} ({names}) SELECT {names} FROM {_recordset(columns, 'r')}"


def _json_rows(columns: Columns, rows: Sequence[tuple[Any, ...]]) -> str:
    """The parameter of a `_recordset`. JSON rather than arrays: a text array escapes every
    quote of the state JSON in Python, which cost more than all the round trips it saved."""
    names = [name for name, _ in columns]
    return json.dumps([dict(zip(names, row, strict=True)) for row in rows], separators=(",", ":"))


_SETS = ", ".join(f"{name} = v.{name}" for name, _ in _POOL_COLUMNS)
_UPDATE_ONE = (
    f"UPDATE pools SET {', '.join(f'{name} = ?' for name, _ in _POOL_COLUMNS)}"
    " WHERE user_id = ? AND version = ?"
)
_MOVED_COLUMNS = (("user_id", "text"), ("old_version", "bigint"), *_POOL_COLUMNS)
_PG_SAVE = (
    f"WITH moved AS (UPDATE pools SET {_SETS} FROM {_recordset(_MOVED_COLUMNS, 'v')}"
    " WHERE pools.user_id = v.user_id AND pools.version = v.old_version RETURNING 1),"
    f" events AS ({_bulk_insert('pool_events', _EVENT_COLUMNS)}),"
    f" postings AS ({_bulk_insert('pool_postings', _POSTING_COLUMNS)}),"
    f" commands AS ({_bulk_insert('pool_commands', _COMMAND_COLUMNS)})"
    " SELECT COUNT(*) FROM moved"
)
"""All of a batch's writes on PostgreSQL: one statement, so one round trip."""


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


def load(tx: Transaction, user: str) -> PoolState | None:
    """The pool's state as stored, or None (no lock)."""
    row = tx.fetchone("SELECT state FROM pools WHERE user_id = ?", (user,))
    return None if row is None else PoolState.from_json(json.loads(row[0]))


def lock_pools(tx: Transaction, users: Iterable[str]) -> dict[str, PoolState]:
    """The states of these pools (those that exist), locked until the transaction ends, one
    query per `CHUNK` users.

    On PostgreSQL the rows are locked FOR UPDATE in user order (its LockRows step runs after
    the sort), the same order in every process, so two transactions that touch the same pools
    cannot deadlock. SQLite's BEGIN IMMEDIATE already holds the whole database."""
    lock = " ORDER BY user_id FOR UPDATE" if tx.dialect == "postgres" else ""
    out: dict[str, PoolState] = {}
    for chunk in chunks(sorted(set(users))):
        for (state_json,) in tx.fetchall(
            f"SELECT state FROM pools WHERE user_id IN ({marks(len(chunk))}){lock}", chunk
        ):
            state = PoolState.from_json(json.loads(state_json))
            out[state.user] = state
    return out


def recorded_commands(
    tx: Transaction, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], Recorded]:
    """The commands recorded under these (user, idempotency key) pairs, by pair, one query per
    `CHUNK` pairs. Read after `lock_pools`, so that on PostgreSQL (a snapshot per statement)
    it sees what the last holder of a lock committed."""
    out: dict[tuple[str, str], Recorded] = {}
    for chunk in chunks(sorted(set(keys))):
        users = sorted({user for user, _ in chunk})
        idem = sorted({key for _, key in chunk})
        pairs = set(chunk)
        for user, key, fingerprint, outcome in tx.fetchall(
            "SELECT user_id, idem_key, fingerprint, outcome FROM pool_commands"
            f" WHERE user_id IN ({marks(len(users))}) AND idem_key IN ({marks(len(idem))})",
            [*users, *idem],
        ):
            if (user, key) in pairs:  # the query matches every user of the chunk with every key
                out[(user, key)] = Recorded(fingerprint, json.loads(outcome))
    return out


def _columns(s: PoolState) -> tuple[Any, ...]:
    """`_POOL_COLUMNS` of a state."""
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
        next_due_ms(s),
        _dumps(s.to_json()),
    )


def insert_pool(tx: Transaction, state: PoolState) -> bool:
    """Create a pool's row (its lock held until the transaction ends). False if another
    transaction created it first: the caller locks the stored one and decides again."""
    columns = (*_POOL_COLUMNS, ("user_id", "text"))
    changed = tx.execute(
        f"{_insert('pools', columns)} ON CONFLICT (user_id) DO NOTHING",
        (*_columns(state), state.user),
    )
    return changed == 1


def save_batch(
    tx: Transaction,
    stored_versions: Mapping[str, int],
    changes: Sequence[PoolChange],
    records: Sequence[CommandRecord],
) -> None:
    """Write a batch: each changed pool's last state over the version stored for it, then
    every change's events and postings and every command record. StoreConflict if a stored
    version moved, which the row locks of `lock_pools` make impossible unless a caller
    skipped them."""
    last = {change.state.user: change.state for change in changes}
    moved = [
        (user, stored_versions[user], *_columns(state))
        for user, state in sorted(last.items())
        if state.version != stored_versions[user]
    ]
    events = [
        (ch.state.user, ch.state.version, i, e.kind, e.at_ms, _dumps(dict(e.data)))
        for ch in changes
        for i, e in enumerate(ch.events)
    ]
    postings = [
        (ch.state.user, ch.state.version, account.value, amount, ch.ts_ms)
        for ch in changes
        for account, amount in sorted(ch.postings.items())
    ]
    commands = [
        (r.user, r.key, r.kind, r.fingerprint, r.result, r.version, r.ts_ms, _dumps(r.outcome))
        for r in records
    ]
    if not (moved or events or postings or commands):
        return
    if tx.dialect == "postgres":
        params = (
            _json_rows(_MOVED_COLUMNS, moved),
            _json_rows(_EVENT_COLUMNS, events),
            _json_rows(_POSTING_COLUMNS, postings),
            _json_rows(_COMMAND_COLUMNS, commands),
        )
        changed = int(tx.scalar(_PG_SAVE, params))
    else:
        changed = sum(tx.execute(_UPDATE_ONE, (*row[2:], *row[:2])) for row in moved)
        tx.executemany(_insert("pool_events", _EVENT_COLUMNS), events)
        tx.executemany(_insert("pool_postings", _POSTING_COLUMNS), postings)
        tx.executemany(_insert("pool_commands", _COMMAND_COLUMNS), commands)
    if changed != len(moved):
        raise StoreConflict(
            f"{len(moved) - changed} of {len(moved)} pools changed under this transaction; retry it"
        )


def claim_due(tx: Transaction, now_ms: int, limit: int) -> list[tuple[str, int]]:
    """Up to `limit` pools that time has work for by `now_ms` (user, due_ms), earliest first,
    each claimed until the transaction ends: on PostgreSQL the rows are locked FOR UPDATE SKIP
    LOCKED, so schedulers running side by side take different pools and never wait for each
    other; SQLite's BEGIN IMMEDIATE holds the whole database (one writer)."""
    lock = " FOR UPDATE SKIP LOCKED" if tx.dialect == "postgres" else ""
    rows = tx.fetchall(
        "SELECT user_id, due_ms FROM pools WHERE due_ms <= ?"
        f" ORDER BY due_ms, user_id LIMIT ?{lock}",
        (now_ms, limit),
    )
    return [(str(r[0]), int(r[1])) for r in rows]


def set_due(tx: Transaction, user: str, due_ms: int) -> None:
    """Set when the scheduler next looks at a pool that a tick did not change (a pool of a
    database older than migration 006, whose due time is not known yet)."""
    tx.execute("UPDATE pools SET due_ms = ? WHERE user_id = ?", (due_ms, user))


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
    columns: tuple[Any, ...]  # status, limit_fen, ..., updated_ms, due_ms: all but state
    state_json: str


@dataclass(frozen=True)
class Unbalanced:
    """A journal entry (the postings of one pool version) whose books do not each sum to 0."""

    user: str
    version: int
    commitment_fen: int
    funds_fen: int


@dataclass(frozen=True)
class EventVersions:
    """How many distinct versions a pool's events cover, and the highest."""

    count: int
    highest: int


@dataclass(frozen=True)
class Books:
    """What the auditor reads: the entries that do not balance, each pool's account balances,
    the versions its events cover, the highest version its command records claim, and every
    pool row."""

    unbalanced: list[Unbalanced]
    balances: dict[str, dict[str, int]]
    event_versions: dict[str, EventVersions]
    command_versions: dict[str, int]
    pools: list[StoredPool]


_MEMO = ", ".join(f"'{a.value}'" for a in sorted(COMMITMENT))
_IN_MEMO = f"CASE WHEN account IN ({_MEMO}) THEN amount_fen ELSE 0 END"
_IN_FUNDS = f"CASE WHEN account IN ({_MEMO}) THEN 0 ELSE amount_fen END"


def read_books(tx: Transaction) -> Books:
    """Everything `cloud_bridge.pool.auditor` checks, in five queries."""
    unbalanced = [
        Unbalanced(str(user), int(version), int(memo), int(funds))
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
        str(user): EventVersions(int(n), int(top))
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
        for row in tx.fetchall(f"SELECT user_id, {_names(_POOL_COLUMNS)} FROM pools")
    ]
    return Books(unbalanced, balances, event_versions, command_versions, pools)

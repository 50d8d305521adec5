"""The pool tables (migration 001_pool.sql): thin SQL, no rules. Both dialects, `?` placeholders."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from cloud_bridge.pool.events import Event
from cloud_bridge.pool.ledger import Account
from cloud_bridge.pool.state import PoolState
from cloud_bridge.store.base import Transaction
from cloud_bridge.store.errors import StoreConflict


def _dumps(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def load(tx: Transaction, user: str, *, lock: bool = False) -> PoolState | None:
    """The pool's state; with `lock`, its row stays locked until the transaction ends."""
    row = tx.fetchone("SELECT state FROM pools WHERE user_id = ?", (user,), for_update=lock)
    return None if row is None else PoolState.from_json(json.loads(row[0]))


def load_for_command(
    tx: Transaction, user: str, key: str
) -> tuple[PoolState | None, tuple[str, dict[str, Any]] | None]:
    """The pool's state, locked until the transaction ends, and the (fingerprint, outcome) of
    the command recorded under `key` if any: one round trip for what every command needs."""
    sql = (
        "SELECT p.state, c.fingerprint, c.outcome FROM pools p LEFT JOIN pool_commands c"
        " ON c.user_id = p.user_id AND c.idem_key = ? WHERE p.user_id = ?"
    )
    if tx.dialect == "postgres":
        sql += " FOR UPDATE OF p"  # the outer join's nullable side cannot be locked
    rows = tx.fetchall(sql, (key, user))
    if not rows:
        return None, None
    state_json, fingerprint, outcome = rows[0]
    state = PoolState.from_json(json.loads(state_json))
    return state, None if fingerprint is None else (fingerprint, json.loads(outcome))


def lock_many(tx: Transaction, users: list[str]) -> None:
    """Lock these pools' rows in user order (one statement), so that two transactions that
    touch the same pools always lock them in the same order and cannot deadlock."""
    if tx.dialect != "postgres" or not users:
        return  # SQLite's BEGIN IMMEDIATE already holds the whole database
    marks = ", ".join("?" for _ in users)
    tx.fetchall(
        f"SELECT user_id FROM pools WHERE user_id IN ({marks}) ORDER BY user_id FOR UPDATE",
        sorted(users),
    )


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


def save(tx: Transaction, before: PoolState | None, after: PoolState) -> bool:
    """Write `after` over `before`. False if a new pool's row was created meanwhile by another
    transaction (the caller runs the command again); StoreConflict if the stored version moved."""
    if before is None:
        return (
            tx.execute(
                "INSERT INTO pools (status, limit_fen, available_fen, outstanding_fen, held_fen,"
                " interest_fen, rate_bps, version, updated_ms, state, user_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user_id) DO NOTHING",
                (*_columns(after), after.user),
            )
            == 1
        )
    changed = tx.execute(
        "UPDATE pools SET status = ?, limit_fen = ?, available_fen = ?, outstanding_fen = ?,"
        " held_fen = ?, interest_fen = ?, rate_bps = ?, version = ?, updated_ms = ?, state = ?"
        " WHERE user_id = ? AND version = ?",
        (*_columns(after), after.user, before.version),
    )
    if changed != 1:  # the row lock makes this impossible unless a caller skipped it
        raise StoreConflict(f"pool {after.user} changed under this transaction; retry it")
    return True


def _insert_rows(tx: Transaction, head: str, rows: list[tuple[Any, ...]]) -> None:
    """One multi-row INSERT (one round trip, whatever the number of rows)."""
    if rows:
        marks = "(" + ", ".join("?" for _ in rows[0]) + ")"
        tx.execute(f"{head} VALUES {', '.join(marks for _ in rows)}", [v for r in rows for v in r])


def append_events(tx: Transaction, user: str, version: int, events: Iterable[Event]) -> None:
    _insert_rows(
        tx,
        "INSERT INTO pool_events (user_id, version, seq, kind, at_ms, data)",
        [(user, version, i, e.kind, e.at_ms, _dumps(dict(e.data))) for i, e in enumerate(events)],
    )


def append_postings(
    tx: Transaction, user: str, version: int, postings: Mapping[Account, int], ts_ms: int
) -> None:
    _insert_rows(
        tx,
        "INSERT INTO pool_postings (user_id, version, account, amount_fen, ts_ms)",
        [(user, version, a.value, amount, ts_ms) for a, amount in sorted(postings.items())],
    )


def record_command(
    tx: Transaction,
    user: str,
    key: str,
    kind: str,
    fingerprint: str,
    result: str,
    version: int,
    ts_ms: int,
    outcome: Mapping[str, Any],
) -> None:
    tx.execute(
        "INSERT INTO pool_commands"
        " (user_id, idem_key, kind, fingerprint, result, version, ts_ms, outcome)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (user, key, kind, fingerprint, result, version, ts_ms, _dumps(outcome)),
    )


def all_states(tx: Transaction) -> list[PoolState]:
    rows = tx.fetchall("SELECT state FROM pools ORDER BY user_id")
    return [PoolState.from_json(json.loads(r[0])) for r in rows]


def events_of(tx: Transaction, user: str, since_version: int = 0) -> list[tuple[int, Event]]:
    """(version, event) of a pool after `since_version`, oldest first."""
    rows = tx.fetchall(
        "SELECT version, kind, at_ms, data FROM pool_events WHERE user_id = ? AND version > ?"
        " ORDER BY version, seq",
        (user, since_version),
    )
    return [(int(v), Event(kind, int(at), json.loads(data))) for v, kind, at, data in rows]

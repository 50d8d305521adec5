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


def lock(tx: Transaction, user: str) -> None:
    """Lock the pool row (if the pool exists) without reading the state."""
    tx.fetchone("SELECT 1 FROM pools WHERE user_id = ?", (user,), for_update=True)


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


def append_events(tx: Transaction, user: str, version: int, events: Iterable[Event]) -> None:
    tx.executemany(
        "INSERT INTO pool_events (user_id, version, seq, kind, at_ms, data)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [(user, version, i, e.kind, e.at_ms, _dumps(dict(e.data))) for i, e in enumerate(events)],
    )


def append_postings(
    tx: Transaction, user: str, version: int, postings: Mapping[Account, int], ts_ms: int
) -> None:
    tx.executemany(
        "INSERT INTO pool_postings (user_id, version, account, amount_fen, ts_ms)"
        " VALUES (?, ?, ?, ?, ?)",
        [(user, version, a.value, amount, ts_ms) for a, amount in sorted(postings.items())],
    )


def find_command(tx: Transaction, user: str, key: str) -> tuple[str, dict[str, Any]] | None:
    """(fingerprint, outcome JSON) of the command recorded under this key, if any."""
    row = tx.fetchone(
        "SELECT fingerprint, outcome FROM pool_commands WHERE user_id = ? AND idem_key = ?",
        (user, key),
    )
    return None if row is None else (row[0], json.loads(row[1]))


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

"""The SQL of pruning: the oldest rows of `rejections`, `events`, `session_events` and settled
`stepups`, a bounded batch per statement.

Each function deletes at most `limit` rows in the caller's transaction and returns how many it
deleted, so a round never holds a long lock or writes one huge delete; the caller repeats
until a batch comes back short. The pool tables (pools, pool_commands, pool_events,
pool_postings: the journal and the ledger) and the device rows (which hold the replay windows
deduplication needs) are never touched here. On PostgreSQL the rows to delete are picked with
`FOR UPDATE SKIP LOCKED`, so bridges sharing a database prune side by side without waiting
for each other.
"""

from __future__ import annotations

from typing import Literal

from cloud_bridge.store.base import Transaction

LogTable = Literal["events", "session_events"]
# Each table's primary key, as a row value (SQLite 3.15+ and PostgreSQL compare row values).
_KEYS = {
    "rejections": "id",
    "events": "(device_id, seq)",
    "session_events": "(device_id, kind, seq)",
    "stepups": "event",
}


def _delete(tx: Transaction, table: str, where: str, params: tuple[int, ...], limit: int) -> int:
    keys = _KEYS[table]
    columns = keys.strip("()")
    lock = " FOR UPDATE SKIP LOCKED" if tx.dialect == "postgres" else ""
    changed = tx.execute(
        f"DELETE FROM {table} WHERE {keys} IN "
        f"(SELECT {columns} FROM {table} WHERE {where} LIMIT ?{lock})",
        (*params, limit),
    )
    return max(changed, 0)


def prune_log(tx: Transaction, table: LogTable, before_ms: int, limit: int) -> int:
    """Delete up to `limit` rows of an event log received before `before_ms`."""
    return _delete(tx, table, "received_ms < ?", (before_ms,), limit)


def prune_settled_stepups(tx: Transaction, before_ms: int, limit: int) -> int:
    """Delete up to `limit` settled step-ups opened before `before_ms` (a pending one stays:
    the worker expires it first)."""
    return _delete(tx, "stepups", "opened_ms < ? AND status <> 'pending'", (before_ms,), limit)


def prune_rejections_before(tx: Transaction, before_ms: int, limit: int) -> int:
    """Delete up to `limit` rejections received before `before_ms`."""
    return _delete(tx, "rejections", "received_ms < ?", (before_ms,), limit)


def prune_rejections_beyond(tx: Transaction, keep: int, limit: int) -> int:
    """Delete up to `limit` of the oldest rejections beyond the newest `keep` (by id: the
    order they were stored in)."""
    edge = tx.scalar("SELECT id FROM rejections ORDER BY id DESC LIMIT 1 OFFSET ?", (keep,))
    if edge is None:
        return 0
    return _delete(tx, "rejections", "id <= ?", (int(edge),), limit)


def count(tx: Transaction, table: Literal["rejections", "events", "session_events"]) -> int:
    """Rows in one of the pruned tables."""
    return int(tx.scalar(f"SELECT COUNT(*) FROM {table}") or 0)

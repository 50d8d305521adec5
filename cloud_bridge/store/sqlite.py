"""SQLite adapter: WAL, `BEGIN IMMEDIATE` write transactions, a busy timeout.

`BEGIN IMMEDIATE` takes the database's write lock at the start of every transaction, so
transactions from any number of processes run one after another and a read-then-write never
fails half way (the serialisation PostgreSQL gets from row locks). `synchronous=FULL` by default:
a committed transaction survives a power cut, not only a process crash; `sqlite:///path?
synchronous=normal` trades that for speed (still safe against process crashes).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cloud_bridge.store.base import Params, Store, Transaction
from cloud_bridge.store.errors import StoreConflict, StoreError
from cloud_bridge.store.migrations import migrate

BUSY_TIMEOUT_MS = 30_000
_SYNC = {"full": "FULL", "normal": "NORMAL"}


def _wrap(exc: sqlite3.Error, what: str) -> StoreError:
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return StoreConflict(f"SQLite is busy ({what}): {text}; retry the transaction")
    return StoreError(f"SQLite {what} failed: {text}")


class SQLiteTransaction(Transaction):
    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Params = ()) -> int:
        try:
            return self._conn.execute(sql, tuple(params)).rowcount
        except sqlite3.Error as exc:
            raise _wrap(exc, "statement") from exc

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        try:
            self._conn.executemany(sql, [tuple(r) for r in rows])
        except sqlite3.Error as exc:
            raise _wrap(exc, "statement") from exc

    def fetchall(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        try:
            return list(self._conn.execute(sql, tuple(params)).fetchall())
        except sqlite3.Error as exc:
            raise _wrap(exc, "query") from exc


class SQLiteStore(Store):
    """A SQLite file, migrated on open."""

    dialect = "sqlite"

    def __init__(self, path: str, *, synchronous: str = "full") -> None:
        self.url = path
        self._in_tx = False
        if synchronous not in _SYNC:
            raise StoreError(f"synchronous must be full or normal, got {synchronous!r}")
        if path != ":memory:":
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder of {path}: {exc.strerror}") from exc
        try:
            self._conn = sqlite3.connect(
                path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False
            )
            self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute(f"PRAGMA synchronous = {_SYNC[synchronous]}")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite database {path}: {exc}") from exc
        with self.transaction() as tx:
            migrate(tx)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        if self._in_tx:
            raise StoreError("a transaction is already open on this store; pass its tx down")
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _wrap(exc, "BEGIN IMMEDIATE") from exc
        self._in_tx = True
        try:
            yield SQLiteTransaction(self._conn)
        except BaseException:
            self._rollback()
            raise
        else:
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise _wrap(exc, "COMMIT") from exc
        finally:
            self._in_tx = False

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def close(self) -> None:
        self._conn.close()

"""The store interface both dialects implement: one transaction, one placeholder style.

SQL is written once with `?` placeholders (qmark style) for both dialects; the PostgreSQL adapter
translates them (so a literal `?` or `%` must not appear inside SQL string literals: pass values
as parameters). Rows come back as tuples.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Literal

Dialect = Literal["sqlite", "postgres"]
Params = Sequence[Any]


class Column(list[Any]):
    """One column of a batch, passed as one array parameter (PostgreSQL only: `?::bytea[]`).
    The PostgreSQL adapter binds it in binary; in text, psycopg escapes a bytea array byte by
    byte in Python (5 ms for 256 envelopes, 0.5 ms in binary). Never empty."""


class Transaction(abc.ABC):
    """One open database transaction. Obtain it from `Store.transaction()`; do not keep it."""

    dialect: Dialect

    @abc.abstractmethod
    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; the number of rows it changed (-1 if not known)."""

    @abc.abstractmethod
    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        """Run one statement once per parameter row."""

    @abc.abstractmethod
    def fetchall(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """Every row of a query."""

    def fetchone(
        self, sql: str, params: Params = (), *, for_update: bool = False
    ) -> tuple[Any, ...] | None:
        """The first row or None. `for_update` locks the row until the transaction ends
        (`FOR UPDATE` on PostgreSQL; SQLite's `BEGIN IMMEDIATE` already holds the write lock)."""
        if for_update and self.dialect == "postgres":
            sql = f"{sql} FOR UPDATE"
        rows = self.fetchall(sql, params)
        return rows[0] if rows else None

    def scalar(self, sql: str, params: Params = ()) -> Any:
        """The first column of the first row, or None."""
        row = self.fetchone(sql, params)
        return row[0] if row else None


class Store(abc.ABC):
    """A migrated database. One Store is one connection: use it from one thread at a time, and
    open one per process (or per worker thread)."""

    dialect: Dialect
    url: str

    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager[Transaction]:
        """`with store.transaction() as tx:` commits on success, rolls back on an exception.
        Nested use is an error: pass `tx` down instead."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close the connection; the Store cannot be used afterwards."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

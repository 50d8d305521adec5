"""PostgreSQL adapter (psycopg 3): READ COMMITTED transactions, row locks for per-pool order.

Processes serialise per pool with `SELECT ... FOR UPDATE` on the pool row (see
`Transaction.fetchone(for_update=True)`), not per database, so different pools proceed in
parallel. Deadlocks and serialization failures surface as `StoreConflict`: retry the whole
transaction. psycopg is imported here only, so SQLite users need not install it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from cloud_bridge.store.base import Column, Params, Store, Transaction
from cloud_bridge.store.errors import StoreConflict, StoreError
from cloud_bridge.store.migrations import migrate

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg.types.array import ListBinaryDumper
except ImportError:  # pragma: no cover - exercised only where psycopg is missing
    psycopg = None  # type: ignore[assignment]


@lru_cache(maxsize=512)
def translate(sql: str) -> str:
    """qmark SQL to psycopg's format style: `?` -> `%s`, a literal `%` -> `%%`."""
    return sql.replace("%", "%%").replace("?", "%s")


def _wrap(exc: Exception, what: str) -> StoreError:
    if isinstance(exc, pg_errors.DeadlockDetected | pg_errors.SerializationFailure):
        return StoreConflict(f"PostgreSQL conflict ({what}): {exc}; retry the transaction")
    return StoreError(f"PostgreSQL {what} failed: {str(exc).strip()}")


class PostgresTransaction(Transaction):
    dialect = "postgres"

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Params = ()) -> int:
        try:
            cur = self._conn.execute(translate(sql), tuple(params) or None)
            return int(cur.rowcount)
        except psycopg.Error as exc:
            raise _wrap(exc, "statement") from exc

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        batch = [tuple(r) for r in rows]
        if not batch:
            return
        try:
            with self._conn.cursor() as cur:
                cur.executemany(translate(sql), batch)
        except psycopg.Error as exc:
            raise _wrap(exc, "statement") from exc

    def fetchall(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        try:
            return list(self._conn.execute(translate(sql), tuple(params) or None).fetchall())
        except psycopg.Error as exc:
            raise _wrap(exc, "query") from exc


class PostgresStore(Store):
    """A PostgreSQL database (the DSN's search_path decides the schema), migrated on open."""

    dialect = "postgres"

    def __init__(self, dsn: str) -> None:
        if psycopg is None:
            raise StoreError(
                "PostgreSQL support needs psycopg 3: pip install 'psycopg[binary]>=3.1'"
            )
        self.url = dsn
        self._in_tx = False
        try:
            self._conn = psycopg.connect(dsn, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {str(exc).strip()}") from exc
        self._conn.adapters.register_dumper(Column, ListBinaryDumper)
        with self.transaction() as tx:
            migrate(tx)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        if self._in_tx:
            raise StoreError("a transaction is already open on this store; pass its tx down")
        self._in_tx = True
        try:
            with self._conn.transaction():
                yield PostgresTransaction(self._conn)
        except psycopg.Error as exc:  # raised by COMMIT itself
            raise _wrap(exc, "COMMIT") from exc
        finally:
            self._in_tx = False

    def close(self) -> None:
        self._conn.close()

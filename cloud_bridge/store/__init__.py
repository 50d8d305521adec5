"""Database adapters: SQLite (the default, a file) and PostgreSQL (by DSN).

    store = open_store("var/bridge/bridge.sqlite3")      # or "postgresql://user@host/db"
    with store.transaction() as tx:
        tx.execute("UPDATE ... WHERE id = ?", (1,))
        rows = tx.fetchall("SELECT ...")

Opening applies the schema migrations in `cloud_bridge/store/migrations/<dialect>/`.
"""

from __future__ import annotations

from cloud_bridge.store.base import Dialect, Store, Transaction
from cloud_bridge.store.errors import StoreConflict, StoreError

__all__ = ["Dialect", "Store", "StoreConflict", "StoreError", "Transaction", "open_store"]


def open_store(url: str) -> Store:
    """A migrated store for a SQLite path (`path`, `sqlite:///relative`, `sqlite:////absolute`,
    optional `?synchronous=normal`) or a PostgreSQL DSN (`postgresql://...`)."""
    if not isinstance(url, str) or not url.strip():
        raise StoreError("the database must be a SQLite path or a postgresql:// DSN")
    if url.startswith(("postgresql://", "postgres://")):
        from cloud_bridge.store.postgres import PostgresStore

        return PostgresStore(url)
    from cloud_bridge.store.sqlite import SQLiteStore

    synchronous = "full"
    if url.startswith("sqlite://"):
        rest = url.removeprefix("sqlite://")
        if not rest.startswith("/"):
            raise StoreError(f"bad SQLite URL {url!r}; write sqlite:///relative or sqlite:////abs")
        path, _, query = rest[1:].partition("?")
        for part in filter(None, query.split("&")):
            name, _, value = part.partition("=")
            if name != "synchronous":
                raise StoreError(f"unknown SQLite URL option {name!r}; known: synchronous")
            synchronous = value.lower()
        url = path
    elif "://" in url:
        raise StoreError(f"unknown database URL scheme in {url!r}; use a path or postgresql://")
    return SQLiteStore(url, synchronous=synchronous)

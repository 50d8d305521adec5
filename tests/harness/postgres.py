"""PostgreSQL for tests: the DSN comes from CP_TEST_PG_DSN; every test gets its own schema."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

ENV = "CP_TEST_PG_DSN"


def base_dsn() -> str | None:
    return os.environ.get(ENV) or None


def with_search_path(dsn: str, schema: str) -> str:
    """The DSN with `options=-csearch_path=schema` added, keeping any other query."""
    sep = "&" if "?" in dsn else "?"
    return f"{dsn}{sep}options={quote(f'-csearch_path={schema}')}"


@contextmanager
def private_schema(dsn: str) -> Iterator[str]:
    """Create a fresh schema, yield a DSN that uses it, drop it afterwards."""
    import psycopg

    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield with_search_path(dsn, schema)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')

"""Versioned schema migrations: ordered SQL files per dialect, applied once, recorded in a table.

Convention: `cloud_bridge/store/migrations/{sqlite,postgres}/NNN_name.sql`, NNN a unique
three-digit (or longer) number; both dialects carry the same numbers. Adding a file is all it
takes: on the next `open_store` every file whose number is not in `schema_migrations` runs, in
order, each in the same transaction as its record. Statements in a file are separated by a `;`
at the end of a line; `--` comment lines are skipped. Never edit a file that has shipped: add one.

Two processes that open the same database at once are serialised (SQLite: `BEGIN IMMEDIATE`;
PostgreSQL: a transaction-scoped advisory lock per schema), so each migration runs exactly once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from cloud_bridge.store.base import Dialect, Transaction
from cloud_bridge.store.errors import StoreError

ROOT = Path(__file__).parent / "migrations"
_NAME = re.compile(r"(\d{3,})_([a-z0-9_]+)\.sql")

_BOOTSTRAP = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
)
# One lock per schema, so tests in private schemas do not wait for each other.
_PG_LOCK = "SELECT pg_advisory_xact_lock(hashtext('cloud_bridge.migrations:' || current_schema()))"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        return split_statements(self.sql)


def split_statements(sql: str) -> list[str]:
    """Statements separated by `;` at the end of a line, without `--` comment lines."""
    out: list[str] = []
    current: list[str] = []
    for line in sql.splitlines():
        if line.strip().startswith("--"):
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            text = "\n".join(current).strip().rstrip(";").strip()
            if text:
                out.append(text)
            current = []
    tail = "\n".join(current).strip()
    if tail:
        out.append(tail)
    return out


def available(dialect: Dialect, root: Path = ROOT) -> list[Migration]:
    """Every migration file of the dialect, in version order."""
    found: dict[int, Migration] = {}
    for path in sorted((root / dialect).glob("*.sql")):
        match = _NAME.fullmatch(path.name)
        if match is None:
            raise StoreError(f"migration file {path} is not named NNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise StoreError(
                f"two migrations have number {version}: {found[version].name}, {path.name}"
            )
        found[version] = Migration(version, path.stem, path.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def migrate(tx: Transaction, root: Path = ROOT) -> list[int]:
    """Apply the missing migrations inside `tx`; the versions applied (in order)."""
    if tx.dialect == "postgres":
        tx.execute(_PG_LOCK)
    tx.execute(_BOOTSTRAP)
    done = {int(r[0]) for r in tx.fetchall("SELECT version FROM schema_migrations")}
    known = available(tx.dialect, root)
    newest = max((m.version for m in known), default=0)
    unknown = sorted(v for v in done if v > newest)
    if unknown:
        raise StoreError(
            f"the database has schema version {unknown[-1]} but this program knows up to "
            f"{newest}; upgrade cloud-bridge before using this database"
        )
    applied = []
    for migration in known:
        if migration.version in done:
            continue
        for statement in migration.statements():
            tx.execute(statement)
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES (?, ?)",
            (migration.version, migration.name),
        )
        applied.append(migration.version)
    return applied


def current_version(tx: Transaction) -> int:
    return int(tx.scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations") or 0)

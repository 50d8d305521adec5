"""Store adapters on both dialects: migrations, transactions, placeholders, URLs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cloud_bridge.store import StoreError, open_store
from cloud_bridge.store.migrations import available, migrate, split_statements

ROOT = Path(__file__).resolve().parents[2]


def url_of(store_url: str) -> str:
    return store_url if store_url.startswith("postgresql") else f"sqlite:///{store_url}"


def test_open_applies_migrations_once(store_url: str) -> None:
    with open_store(url_of(store_url)) as store, store.transaction() as tx:
        rows = tx.fetchall("SELECT version, name FROM schema_migrations ORDER BY version")
        assert rows == [(m.version, m.name) for m in available(store.dialect)]
        assert tx.scalar("SELECT COUNT(*) FROM pools") == 0
    with open_store(url_of(store_url)) as again, again.transaction() as tx:
        assert tx.scalar("SELECT COUNT(*) FROM schema_migrations") == len(rows)


def test_both_dialects_ship_the_same_migration_numbers() -> None:
    assert [m.version for m in available("sqlite")] == [m.version for m in available("postgres")]


def test_adding_a_migration_file_is_all_it_takes(store_url: str, tmp_path: Path) -> None:
    with open_store(url_of(store_url)) as store:
        root = tmp_path / "migrations"
        (root / store.dialect).mkdir(parents=True)
        for m in available(store.dialect):
            (root / store.dialect / f"{m.name}.sql").write_text(m.sql)
        nxt = max(m.version for m in available(store.dialect)) + 1
        added = root / store.dialect / f"{nxt:03d}_probe.sql"
        added.write_text(
            "-- a next table\nCREATE TABLE probe (device TEXT PRIMARY KEY,\n"
            "  seq BIGINT NOT NULL);\nCREATE INDEX probe_seq ON probe (seq);\n"
        )
        with store.transaction() as tx:
            assert migrate(tx, root) == [nxt]
            assert migrate(tx, root) == []
            tx.execute("INSERT INTO probe (device, seq) VALUES (?, ?)", ("d1", 5))
        added.rename(root / store.dialect / f"{nxt:03d}_x.sql")
        (root / store.dialect / f"{nxt + 1:03d}_y.sql").write_text("SELECT 1;")
        with pytest.raises(StoreError, match=r"two migrations|NNN"), store.transaction() as tx:
            (root / store.dialect / f"{nxt + 1:03d}-bad.sql").write_text("")
            migrate(tx, root)


def test_a_database_newer_than_the_program_is_refused(store_url: str) -> None:
    with open_store(url_of(store_url)) as store, store.transaction() as tx:
        tx.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", (999, "future"))
    with pytest.raises(StoreError, match=r"schema version 999.*upgrade"):
        open_store(url_of(store_url))


def test_processes_starting_at_once_migrate_exactly_once(store_url: str) -> None:
    url = url_of(store_url)
    start_at = str(time.time() + 1.5)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.pool.workers", "open", url, start_at],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        for _ in range(4)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0 and out.strip() == "ok", err
    with open_store(url) as store, store.transaction() as tx:
        assert tx.scalar("SELECT COUNT(*) FROM schema_migrations") == len(available(store.dialect))


def test_transaction_commits_or_rolls_back_and_uses_one_placeholder_style(store_url: str) -> None:
    with open_store(url_of(store_url)) as store:
        with store.transaction() as tx:
            tx.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v BIGINT)")
            tx.executemany("INSERT INTO t (k, v) VALUES (?, ?)", [("a", 1), ("b", 2)])
        with pytest.raises(RuntimeError), store.transaction() as tx:
            tx.execute("UPDATE t SET v = ? WHERE k = ?", (100, "a"))
            raise RuntimeError("the caller failed half way")
        with store.transaction() as tx:
            assert tx.fetchall("SELECT k, v FROM t ORDER BY k") == [("a", 1), ("b", 2)]
            # A literal % is not a placeholder on either dialect.
            assert tx.scalar("SELECT k FROM t WHERE k LIKE 'a%' AND v = ?", (1,)) == "a"
            assert tx.fetchone("SELECT v FROM t WHERE k = ?", ("b",), for_update=True) == (2,)
            assert tx.fetchone("SELECT v FROM t WHERE k = ?", ("zz",)) is None
        with (
            pytest.raises(StoreError, match="already open"),
            store.transaction(),
            store.transaction(),
        ):
            pass
        with pytest.raises(StoreError), store.transaction() as tx:
            tx.execute("INSERT INTO t (k, v) VALUES (?, ?)", ("a", 3))  # duplicate key, wrapped
        with store.transaction() as tx:
            assert tx.scalar("SELECT COUNT(*) FROM t") == 2


def test_sqlite_uses_wal(tmp_path: Path) -> None:
    with open_store(str(tmp_path / "sub" / "x.sqlite3")) as store, store.transaction() as tx:
        assert tx.scalar("PRAGMA journal_mode") == "wal"


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("", "SQLite path or a postgresql"),
        ("mysql://x", "unknown database URL scheme"),
        ("sqlite://relative", "sqlite:///relative"),
        ("sqlite:///x.db?mode=ro", "unknown SQLite URL option"),
        ("sqlite:///x.db?synchronous=off", "synchronous"),
        ("postgresql://nobody@127.0.0.1:1/none", "cannot connect to PostgreSQL"),
    ],
)
def test_bad_urls_say_what_is_wrong(
    url: str, match: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreError, match=match):
        open_store(url)


def test_split_statements_skips_comments_and_keeps_order() -> None:
    sql = "-- header\nCREATE TABLE a (x INT);\n\nCREATE TABLE b (\n  y INT\n);\nSELECT 1"
    assert split_statements(sql) == [
        "CREATE TABLE a (x INT)",
        "CREATE TABLE b (\n  y INT\n)",
        "SELECT 1",
    ]

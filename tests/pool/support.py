"""Helpers shared by the pool tests: a small test policy, fresh databases, a controllable clock."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from cloud_bridge.pool.policy import (
    Emergencies,
    Health,
    Holds,
    Installments,
    Limits,
    Policy,
    Raises,
    Statement,
)
from tests.harness import postgres

DAY = 86_400_000
T0 = 1_700_000_000_000  # a fixed epoch, so every run is the same

# Small numbers so that random sequences reach every rule: raises after 2 on-time statements,
# 3-period plans from 500 yuan, a 10 % emergency reserve, 3 live holds.
TEST_POLICY = Policy(
    limits=Limits(min_fen=10_000, max_fen=3_000_000, min_draw_fen=100),
    holds=Holds(default_ttl_ms=DAY, max_ttl_ms=10 * DAY, max_active=3),
    statement=Statement(
        cycle_days=30, grace_days=10, min_payment_bps=1000, min_payment_floor_fen=5_000
    ),
    raises=Raises(after_on_time_cycles=2, step_bps=2500),
    installments=Installments(periods=3, min_amount_fen=50_000),
    emergency=Emergencies(reserve_bps=1000),
    health=Health(boost_fen=20_000, max_boost_fen=50_000),
)


class Clock:
    """An injected clock the test moves by hand."""

    def __init__(self, now_ms: int = T0) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


def fresh_database(kind: str) -> tuple[str, Callable[[], None]]:
    """(url, cleanup) of an empty database: a new SQLite file, or a new PostgreSQL schema."""
    if kind == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="cp-pool-"))
        # synchronous=normal: still safe against process crashes, and fast enough for many runs.
        return f"sqlite:///{folder}/pool.sqlite3?synchronous=normal", lambda: shutil.rmtree(folder)
    import psycopg

    base = postgres.base_dsn()
    assert base is not None
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')

    def drop() -> None:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')

    return postgres.with_search_path(base, schema), drop

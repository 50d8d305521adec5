"""Eight processes, each with its own connection, draw from one pool at once: never overdrawn.

On PostgreSQL the pool row lock (`SELECT ... FOR UPDATE`) serialises them; SQLite runs the same
test through `BEGIN IMMEDIATE`. Demand is several times the limit, so the pool runs dry and the
refusals race the draws.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cloud_bridge.pool import commands as c
from cloud_bridge.pool.auditor import audit
from cloud_bridge.pool.service import PoolService
from cloud_bridge.store import open_store
from tests.pool.support import TEST_POLICY

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 8
LIMIT = 600_000


@pytest.mark.slow
def test_eight_workers_never_overdraw_one_pool(store_url: str) -> None:
    url = store_url if store_url.startswith("postgresql") else f"sqlite:///{store_url}"
    store = open_store(url)
    service = PoolService(store, TEST_POLICY)
    assert service.execute(c.OpenPool(user="shared", key="open", limit_fen=LIMIT)).ok
    start_at = time.time() + 2.0  # all workers begin together, after their imports
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.pool.workers",
                "draw",
                url,
                "shared",
                str(i),
                "40",
                str(start_at),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        for i in range(WORKERS)
    ]
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        reports.append(json.loads(out))
    drawn = sum(r["drawn"] for r in reports)
    repaid = sum(r["repaid"] for r in reports)
    view = service.get("shared")
    assert view is not None
    assert view.outstanding_fen == drawn - repaid <= LIMIT
    assert view.available_fen == LIMIT - view.outstanding_fen >= 0
    assert sum(r["refused"] for r in reports) > 0  # the pool did run dry under contention
    assert drawn > LIMIT  # and repayments made room for more than one limit's worth
    with store.transaction() as tx:
        assert audit(tx) == []
        n = tx.scalar("SELECT COUNT(*) FROM pool_commands WHERE user_id = 'shared'")
    assert n == 1 + WORKERS * 40
    store.close()

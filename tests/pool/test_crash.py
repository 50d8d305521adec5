"""Crash consistency: SIGKILL a real process at random points of a command stream, restart it,
retry every command with the same idempotency keys, and compare with the reference model.

A kill can land anywhere: between transactions, in the middle of one, during COMMIT. Whatever
was committed replays as a duplicate; whatever was not runs again. At the end every pool must
equal the model's (which ran the stream once), nothing may be doubled, and the books must audit
clean.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cloud_bridge.pool.auditor import audit
from cloud_bridge.pool.service import PoolService
from cloud_bridge.store import open_store
from tests.pool.model import Model
from tests.pool.support import TEST_POLICY
from tests.pool.workers import USERS, stream_batches

ROOT = Path(__file__).resolve().parents[2]
COUNT = 150
KILLS = 8


def run_until_killed(url: str, seed: int, kill_after: int | None, delay_s: float) -> int | None:
    """Run the stream; SIGKILL it `delay_s` after its `kill_after`-th committed batch. None if
    it completed, else how many batches it reported done."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.pool.workers", "stream", url, str(seed), str(COUNT)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None and proc.stderr is not None
    done = 0
    try:
        for line in proc.stdout:
            if line.strip() == "complete":
                return None
            done += 1
            if kill_after is not None and done >= kill_after:
                time.sleep(delay_s)
                proc.send_signal(signal.SIGKILL)
                proc.wait(30)
                return done
        proc.wait(30)
        pytest.fail(f"the stream died by itself (exit {proc.returncode}): {proc.stderr.read()}")
    finally:
        proc.kill()
        proc.wait(30)
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [7])
def test_sigkill_and_retry_converges_to_the_model(store_url: str, seed: int) -> None:
    url = store_url if store_url.startswith("postgresql") else f"sqlite:///{store_url}"
    open_store(url).close()  # migrate once, outside the timing of the kills
    rng = random.Random(seed)
    batches = stream_batches(seed, COUNT)
    frontier = 0  # the most batches any run reported done
    kills = 0
    while True:
        # Kill near the frontier (sometimes while replaying committed batches, mostly in new
        # work), a random 0-4 ms after a batch reported done: before, during or after the next
        # COMMIT. After KILLS kills, let it finish.
        kill_after = frontier + rng.randint(1, 12) if kills < KILLS else None
        done = run_until_killed(url, seed, kill_after, rng.uniform(0, 0.004))
        if done is None:
            break
        kills += 1
        frontier = max(frontier, done)
    assert kills == KILLS and frontier < len(batches)

    model = Model(TEST_POLICY)
    results = []
    for ts, batch in batches:
        results += [model.apply(cmd, ts) for cmd in batch]
    assert results.count("ok") > COUNT // 3  # the stream did real work, not just refusals
    store = open_store(url)
    try:
        service = PoolService(store, TEST_POLICY)
        for user in USERS:
            view = service.get(user)
            assert view is not None and view.to_json() == model.view(user)
        with store.transaction() as tx:
            assert audit(tx) == []
            recorded = tx.scalar("SELECT COUNT(*) FROM pool_commands")
            events = tx.scalar("SELECT COUNT(DISTINCT user_id || ':' || version) FROM pool_events")
        # Each command is recorded once; each pool version was written once.
        assert recorded == sum(len(b) for _, b in batches)
        assert events == sum(model.pools[u].version for u in USERS)
    finally:
        store.close()

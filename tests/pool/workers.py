"""Child processes for the multi-process tests (each opens its own connection).

    python -m tests.pool.workers open URL START_AT
    python -m tests.pool.workers stream URL SEED COUNT
    python -m tests.pool.workers draw URL USER SEED COUNT START_AT

`stream` runs the deterministic command stream of `stream_batches(SEED, COUNT)` from the start,
printing `done I` after each committed batch; the crash test kills it with SIGKILL and runs it
again (same keys, same timestamps). `draw` hammers one pool and prints a JSON summary.
"""

from __future__ import annotations

import json
import random
import sys
import time

from cloud_bridge.pool import commands as c
from cloud_bridge.pool.results import Result
from cloud_bridge.pool.service import PoolService
from cloud_bridge.store import open_store
from tests.pool.support import DAY, T0, TEST_POLICY, Clock

USERS = ["u0", "u1", "u2"]


def stream_batches(seed: int, count: int) -> list[tuple[int, list[c.Command]]]:
    """(timestamp, commands) batches; each batch runs in one transaction."""
    rng = random.Random(seed)
    out: list[tuple[int, list[c.Command]]] = []
    now = T0
    n = 0
    for user in USERS:
        n += 1
        out.append((now, [c.OpenPool(user=user, key=f"s{seed}-{n}", limit_fen=500_000)]))
    while n < count:
        now += rng.choice([0, 60_000, 3_600_000, DAY, 5 * DAY])
        batch: list[c.Command] = []
        for _ in range(rng.choice([1, 1, 2, 3])):
            n += 1
            user, key = rng.choice(USERS), f"s{seed}-{n}"
            roll = rng.random()
            if roll < 0.45:
                batch.append(c.Draw(user=user, key=key, amount_fen=rng.randint(100, 60_000)))
            elif roll < 0.8:
                batch.append(c.Repay(user=user, key=key, amount_fen=rng.randint(100, 50_000)))
            elif roll < 0.9:
                batch.append(
                    c.PlaceHold(
                        user=user, key=key, hold_id=f"h{n % 3}", amount_fen=rng.randint(100, 9_000)
                    )
                )
            else:
                batch.append(c.ConfirmHold(user=user, key=key, hold_id=f"h{rng.randint(0, 2)}"))
        out.append((now, batch))
    return out


def main(argv: list[str]) -> int:
    mode, url = argv[0], argv[1]
    if mode == "open":
        start_at = float(argv[2])
        time.sleep(max(0.0, start_at - time.time()))
        open_store(url).close()
        print("ok", flush=True)
        return 0
    if mode == "stream":
        seed, count = int(argv[2]), int(argv[3])
        clock = Clock()
        service = PoolService(open_store(url), TEST_POLICY, clock)
        for i, (ts, batch) in enumerate(stream_batches(seed, count)):
            clock.now_ms = ts
            service.execute_many(batch)
            print(f"done {i}", flush=True)
        print("complete", flush=True)
        return 0
    if mode == "draw":
        user, seed, count, start_at = argv[2], int(argv[3]), int(argv[4]), float(argv[5])
        rng = random.Random(seed)
        service = PoolService(open_store(url), TEST_POLICY)
        time.sleep(max(0.0, start_at - time.time()))
        drawn = repaid = refused = 0
        for i in range(count):
            key = f"w{seed}-{i}"
            if drawn - repaid > 20_000 and rng.random() < 0.25:
                amount = rng.randint(1, drawn - repaid)
                outcome = service.execute(c.Repay(user=user, key=key, amount_fen=amount))
                # Only this worker's own debt is repaid, so it can never exceed the pool's.
                assert outcome.result is Result.OK, outcome
                repaid += amount
                continue
            amount = rng.randint(1_000, 40_000)
            outcome = service.execute(c.Draw(user=user, key=key, amount_fen=amount))
            if outcome.result is Result.OK:
                drawn += amount
            else:
                assert outcome.result is Result.EXCEEDS_CREDIT, outcome
                refused += 1
            assert outcome.view is not None and outcome.view.available_fen >= 0
        print(json.dumps({"drawn": drawn, "repaid": repaid, "refused": refused}), flush=True)
        return 0
    raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Pool suite: credit-pool commands per second, pure engine and through each store.

Workload: 100 open pools; draws and repayments of 1 yuan alternate, round robin over the pools,
each command with a fresh idempotency key (so every one is a real state change: pool row update,
events, journal postings, command record). "one per transaction" is what a lone caller gets;
"batched" runs 50 commands per transaction (`execute_many`), as the bridge does with a burst of
device messages. PostgreSQL runs when CP_BENCH_PG_DSN (or CP_TEST_PG_DSN) names one, in a
private schema that is dropped afterwards.

The peer of the PostgreSQL figures is pgbench's TPC-B-like script (five statements a
transaction) with one client, on the same server in the same run; the goal is that the pool's
batched rate stays at least `PGBENCH_GOAL` of it. Without pgbench that one figure is skipped,
and the run says so.
"""

from __future__ import annotations

import itertools
import os
import secrets
import time
from collections.abc import Callable, Iterator

from cloud_bridge.pool import commands as c
from cloud_bridge.pool.engine import decide
from cloud_bridge.pool.policy import Policy
from cloud_bridge.pool.service import PoolService
from cloud_bridge.store import open_store
from tools.bench.common import Context, Figure, Pgbench, find_pgbench, pg_schema, pgbench_tps

POOLS = 100
BATCH = 50
T0 = 1_700_000_000_000
PGBENCH_GOAL = 0.7
"""The pool's batched PostgreSQL rate, as a share of pgbench's single-client TPC-B-like rate."""


def _workload() -> Iterator[c.Command]:
    for n in itertools.count():
        user = f"bench-{n % POOLS}"
        if (n // POOLS) % 2 == 0:
            yield c.Draw(user=user, key=f"b{n}", amount_fen=100)
        else:
            yield c.Repay(user=user, key=f"b{n}", amount_fen=100)


def _rate(step: Callable[[], int], seconds: float) -> float:
    """Commands per second: call `step` (which runs some commands, returning how many) for
    about `seconds`."""
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        done += step()
    return done / elapsed


def _engine_rate(seconds: float) -> float:
    policy = Policy()
    states = {}
    for i in range(POOLS):
        opened = decide(None, c.OpenPool(user=f"bench-{i}", key="o", limit_fen=10**7), T0, policy)
        states[f"bench-{i}"] = opened.state
    work = _workload()
    now = itertools.count(T0, 1_000)

    def step() -> int:
        for _ in range(200):
            cmd = next(work)
            states[cmd.user] = decide(states[cmd.user], cmd, next(now), policy).state
        return 200

    return _rate(step, seconds)


def _store_rates(url: str, seconds: float) -> tuple[float, float]:
    store = open_store(url)
    try:
        clock = itertools.count(T0, 1_000)
        service = PoolService(store, Policy(), lambda: next(clock))
        service.execute_many(
            [c.OpenPool(user=f"bench-{i}", key="o", limit_fen=10**7) for i in range(POOLS)]
        )
        work = _workload()

        def one() -> int:
            for _ in range(20):
                service.execute(next(work))
            return 20

        def batched() -> int:
            service.execute_many([next(work) for _ in range(BATCH)])
            return BATCH

        return _rate(one, seconds), _rate(batched, seconds)
    finally:
        store.close()


def run(ctx: Context) -> list[Figure]:
    seconds = 0.7 if ctx.quick else 3.0
    ctx.progress("pure engine (decide)")
    figures = [
        Figure("pool", "engine decide (pure, no store)", _engine_rate(seconds), "cmd/s"),
    ]
    for name, query in (("sqlite", ""), ("sqlite synchronous=normal", "?synchronous=normal")):
        ctx.progress(f"{name}: one command per transaction, then batches of {BATCH}")
        path = ctx.workdir / f"pool-{secrets.token_hex(4)}.sqlite3"
        one, batched = _store_rates(f"sqlite:///{path}{query}", seconds)
        note = "WAL, fsync on commit" if not query else "WAL, fsync at checkpoints"
        figures += [
            Figure("pool", f"{name}: 1 command per transaction", one, "cmd/s", note=note),
            Figure(
                "pool", f"{name}: {BATCH} commands per transaction", batched, "cmd/s", note=note
            ),
        ]
    dsn = ctx.pg_dsn or os.environ.get("CP_TEST_PG_DSN")
    if dsn:
        ctx.progress("pgbench: TPC-B-like, one client (the peer of the PostgreSQL figures)")
        peer = pgbench_tps(dsn, max(1, round(seconds)), find_pgbench())
        if peer.tps is None:
            ctx.progress(f"pgbench figure skipped: {peer.why_not}")
        ctx.progress(f"postgresql: one command per transaction, then batches of {BATCH}")
        with pg_schema(dsn) as url:
            one, batched = _store_rates(url, seconds)
        figures += _postgres_figures(one, batched, peer)
    else:
        ctx.progress("postgresql skipped: set CP_BENCH_PG_DSN or CP_TEST_PG_DSN")
    return figures


def _postgres_figures(one: float, batched: float, peer: Pgbench) -> list[Figure]:
    note = "one connection, row lock per pool"
    names = (
        ("postgresql: 1 command per transaction", one),
        (f"postgresql: {BATCH} commands per transaction", batched),
    )
    if peer.tps is None:
        return [Figure("pool", name, value, "cmd/s", peer=peer.why_not, note=note)
                for name, value in names]  # fmt: skip
    figures = [
        Figure("pool", name, value, "cmd/s", peer=f"{value / peer.tps:.2f} of pgbench", note=note)
        for name, value in names
    ]
    return [
        Figure("pool", "pgbench TPC-B-like, 1 client (same run)", peer.tps, "tx/s",
               note=f"{peer.command}; same server, private schema"),
        *figures,
        Figure("pool", f"postgresql {BATCH} per transaction / pgbench", batched / peer.tps,
               "ratio", target=f">= {PGBENCH_GOAL}", note="the pool's goal against pgbench"),
    ]  # fmt: skip

"""A batch in one transaction: the same outcomes as its commands one at a time, a fixed number
of statements however many commands it holds, and a pool opened meanwhile by another
transaction."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from cloud_bridge.pool import commands as c
from cloud_bridge.pool.auditor import audit
from cloud_bridge.pool.results import Result
from cloud_bridge.pool.service import Outcome, PoolService
from cloud_bridge.store import Store, open_store
from cloud_bridge.store.base import Params, Transaction
from tests.pool.support import TEST_POLICY, Clock


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    url = store_url if store_url.startswith("postgresql") else f"sqlite:///{store_url}"
    with open_store(url) as opened:
        yield opened


def _script(prefix: str) -> list[c.Command]:
    """Opens, draws, a replay and a reused key in one batch, a refusal, a pool that does not
    exist yet and is opened later in the batch, holds placed and confirmed."""
    a, b, n = f"{prefix}a", f"{prefix}b", f"{prefix}new"
    return [
        c.OpenPool(user=a, key="open", limit_fen=100_000),
        c.Draw(user=n, key="early", amount_fen=1_000),  # no pool yet: not recorded
        c.OpenPool(user=b, key="open", limit_fen=50_000),
        c.Draw(user=a, key="d1", amount_fen=30_000),
        c.Draw(user=a, key="d1", amount_fen=30_000),  # the same key again: replayed
        c.Draw(user=a, key="d1", amount_fen=31_000),  # reused for another command
        c.Draw(user=b, key="d1", amount_fen=60_000),  # exceeds credit: recorded refusal
        c.PlaceHold(user=b, key="h", hold_id="h1", amount_fen=20_000),
        c.OpenPool(user=n, key="open", limit_fen=20_000),
        c.Draw(user=n, key="early", amount_fen=1_000),  # now it runs
        c.ConfirmHold(user=b, key="cf", hold_id="h1", amount_fen=5_000),
        c.Repay(user=a, key="r", amount_fen=10_000),
        c.Draw(user=b, key="d1", amount_fen=60_000),  # the recorded refusal, replayed
    ]


def _comparable(outcomes: Iterable[Outcome], prefix: str) -> list[dict[str, Any]]:
    out = []
    for outcome in outcomes:
        doc = outcome.to_json()
        doc["user"] = doc["user"].removeprefix(prefix)
        if doc["view"] is not None:
            doc["view"]["user"] = doc["view"]["user"].removeprefix(prefix)
        out.append(doc)
    return out


def test_a_batch_gives_the_outcomes_of_its_commands_one_by_one(store: Store) -> None:
    service = PoolService(store, TEST_POLICY, Clock())
    one_by_one = [service.execute(cmd) for cmd in _script("s-")]
    batched = service.execute_many(_script("b-"))
    assert _comparable(batched, "b-") == _comparable(one_by_one, "s-")
    assert [o.result for o in batched][4:7] == [Result.OK, Result.KEY_REUSED, Result.EXCEEDS_CREDIT]
    assert batched[4].replayed and batched[-1].replayed and not batched[3].replayed
    assert service.get("b-a") == batched[-2].view
    with store.transaction() as tx:
        assert audit(tx) == []
    # Run again, every command replays from the store (the early draw too: its pool exists
    # now and its key was recorded later in the batch), but the reused key is still refused.
    again = service.execute_many(_script("b-"))
    assert [o.replayed for o in again] == [i != 5 for i in range(len(again))]
    assert again[5].result is Result.KEY_REUSED


class CountingTx(Transaction):
    """The real transaction, counting the statements sent through it."""

    def __init__(self, tx: Transaction) -> None:
        self.dialect = tx.dialect
        self._tx = tx
        self.statements = 0

    def execute(self, sql: str, params: Params = ()) -> int:
        self.statements += 1
        return self._tx.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        self.statements += 1
        self._tx.executemany(sql, rows)

    def fetchall(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        self.statements += 1
        return self._tx.fetchall(sql, params)


@pytest.mark.parametrize("size", [1, 60])
def test_a_batch_reads_with_one_query_per_table(store: Store, size: int) -> None:
    service = PoolService(store, TEST_POLICY, Clock())
    service.execute_many([c.OpenPool(user=f"u{i}", key="o", limit_fen=50_000) for i in range(60)])
    batch = [c.Draw(user=f"u{i % 60}", key=f"d{i}", amount_fen=100) for i in range(size)]
    with store.transaction() as tx:
        counting = CountingTx(tx)
        assert all(o.ok for o in service.execute_many(batch, tx=counting))
    # PostgreSQL: lock and read the pools, read the keys, write everything: three statements.
    # SQLite: the same two reads, an UPDATE per pool, one executemany per other table (it
    # runs in the process: no round trips to save).
    assert counting.statements == (3 if store.dialect == "postgres" else 2 + size + 3)


@pytest.mark.postgres
def test_a_pool_opened_meanwhile_by_another_transaction(pg_dsn: str) -> None:
    ours, theirs = open_store(pg_dsn), open_store(pg_dsn)
    try:
        other = PoolService(theirs, TEST_POLICY, Clock())
        clock = Clock()
        calls = 0

        def clock_that_lets_the_other_open_first() -> int:
            # Called after this batch has read (no pool "late" yet) and before it writes.
            nonlocal calls
            calls += 1
            if calls == 1:
                opened = other.execute(c.OpenPool(user="late", key="open", limit_fen=40_000))
                assert opened.ok
            return clock()

        service = PoolService(ours, TEST_POLICY, clock_that_lets_the_other_open_first)
        outcomes = service.execute_many(
            [
                c.OpenPool(user="late", key="open", limit_fen=40_000),  # theirs, same key
                c.OpenPool(user="late", key="mine", limit_fen=30_000),
                c.Draw(user="late", key="d", amount_fen=1_000),
            ]
        )
        assert outcomes[0].replayed and outcomes[0].ok
        assert [o.result for o in outcomes[1:]] == [Result.POOL_EXISTS, Result.OK]
        view = service.get("late")
        assert view is not None and (view.limit_fen, view.outstanding_fen) == (40_000, 1_000)
        with ours.transaction() as tx:
            assert audit(tx) == []
    finally:
        ours.close()
        theirs.close()


def test_an_empty_batch_sends_nothing(store: Store) -> None:
    service = PoolService(store, TEST_POLICY, Clock())
    with store.transaction() as tx:
        counting = CountingTx(tx)
        assert service.execute_many([], tx=counting) == []
    assert counting.statements == 0

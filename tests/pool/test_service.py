"""The service on both dialects: idempotency, the caller's transaction, batches, reads."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cloud_bridge.pool import commands as c
from cloud_bridge.pool.auditor import audit
from cloud_bridge.pool.results import Result
from cloud_bridge.pool.service import PoolService
from cloud_bridge.store import Store, open_store
from tests.pool.support import TEST_POLICY, Clock


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    url = store_url if store_url.startswith("postgresql") else f"sqlite:///{store_url}"
    with open_store(url) as opened:
        with opened.transaction() as tx:  # a table of the bridge's own, as issue 6 will add
            tx.execute("CREATE TABLE inbox (device TEXT NOT NULL, seq BIGINT NOT NULL)")
        yield opened


@pytest.fixture
def service(store: Store) -> PoolService:
    return PoolService(store, TEST_POLICY, Clock())


def test_same_key_returns_the_first_outcome_and_changes_nothing(service: PoolService) -> None:
    service.execute(c.OpenPool(user="u", key="open", limit_fen=100_000))
    first = service.execute(c.Draw(user="u", key="d", amount_fen=70_000))
    service.execute(c.Repay(user="u", key="r", amount_fen=70_000))
    again = service.execute(c.Draw(user="u", key="d", amount_fen=70_000))
    assert first.ok and again.replayed and not first.replayed
    assert (again.result, again.view, again.events) == (first.result, first.view, first.events)
    assert service.get("u").outstanding_fen == 0  # type: ignore[union-attr]


def test_refusals_are_recorded_too(service: PoolService) -> None:
    service.execute(c.OpenPool(user="u", key="open", limit_fen=10_000))
    assert (
        service.execute(c.Draw(user="u", key="d", amount_fen=20_000)).result
        is Result.EXCEEDS_CREDIT
    )
    service.execute(c.SetLimit(user="u", key="raise", limit_fen=30_000))
    retry = service.execute(c.Draw(user="u", key="d", amount_fen=20_000))
    assert retry.replayed and retry.result is Result.EXCEEDS_CREDIT  # the same answer as before


def test_a_key_reused_for_another_command_is_refused(service: PoolService) -> None:
    service.execute(c.OpenPool(user="u", key="open", limit_fen=10_000))
    service.execute(c.Draw(user="u", key="d", amount_fen=100))
    reused = service.execute(c.Draw(user="u", key="d", amount_fen=200))
    assert reused.result is Result.KEY_REUSED and reused.view.outstanding_fen == 100  # type: ignore[union-attr]


def test_unknown_pool_is_not_recorded_so_it_can_run_after_opening(service: PoolService) -> None:
    early = service.execute(c.Draw(user="late", key="d", amount_fen=100))
    assert early.result is Result.POOL_NOT_FOUND and early.view is None
    assert service.get("late") is None
    service.execute(c.OpenPool(user="late", key="open", limit_fen=10_000))
    assert service.execute(c.Draw(user="late", key="d", amount_fen=100)).ok


def test_commands_share_the_callers_transaction(store: Store, service: PoolService) -> None:
    service.execute(c.OpenPool(user="a", key="open", limit_fen=50_000))
    service.execute(c.OpenPool(user="b", key="open", limit_fen=50_000))
    # The bridge's pattern: its own writes and several pools' commands in one transaction.
    with store.transaction() as tx:
        tx.execute("INSERT INTO inbox (device, seq) VALUES (?, ?)", ("dev", 1))
        outcomes = service.execute_many(
            [
                c.Draw(user="b", key="1", amount_fen=1_000),
                c.Draw(user="a", key="1", amount_fen=2_000),
                c.Repay(user="b", key="2", amount_fen=500),
            ],
            tx=tx,
        )
        assert [o.result for o in outcomes] == [Result.OK] * 3
        assert service.get("a", tx=tx).outstanding_fen == 2_000  # type: ignore[union-attr]
    assert service.get("b").outstanding_fen == 500  # type: ignore[union-attr]
    # A failure after the commands rolls back the commands and the caller's writes together.
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.execute("INSERT INTO inbox (device, seq) VALUES (?, ?)", ("dev", 2))
        assert service.execute(c.Draw(user="a", key="3", amount_fen=9_000), tx=tx).ok
        raise RuntimeError("publishing failed")
    assert service.get("a").outstanding_fen == 2_000  # type: ignore[union-attr]
    with store.transaction() as tx:
        assert tx.fetchall("SELECT seq FROM inbox") == [(1,)]
        assert audit(tx) == []
    assert service.execute(c.Draw(user="a", key="3", amount_fen=9_000)).replayed is False


def test_views_and_version_increase_on_every_change(service: PoolService) -> None:
    v1 = service.execute(c.OpenPool(user="a", key="1", limit_fen=50_000)).view
    v2 = service.execute(c.Freeze(user="a", key="2")).view
    v3 = service.execute(c.Freeze(user="a", key="3")).view  # refused: no change
    assert (v1.version, v2.version, v3.version) == (1, 2, 2)  # type: ignore[union-attr]
    service.execute(c.OpenPool(user="b", key="1", limit_fen=50_000))
    assert [v.user for v in service.views()] == ["a", "b"]
    assert service.get("a").status.value == "frozen"  # type: ignore[union-attr]

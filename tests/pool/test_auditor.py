"""The auditor's check is pure: books read from a real store are clean, and each kind of damage
to them is named."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from cloud_bridge.pool import commands as c
from cloud_bridge.pool.auditor import audit, check
from cloud_bridge.pool.service import PoolService
from cloud_bridge.store import open_store, pool_repo
from cloud_bridge.store.pool_repo import Books, EventVersions, StoredPool, Unbalanced
from tests.pool.support import TEST_POLICY, Clock


@pytest.fixture(scope="module")
def books(tmp_path_factory: pytest.TempPathFactory) -> Books:
    path: Path = tmp_path_factory.mktemp("auditor") / "pools.sqlite3"
    with open_store(str(path)) as store:
        service = PoolService(store, TEST_POLICY, Clock())
        service.execute_many(
            [
                c.OpenPool(user="a", key="o", limit_fen=100_000),
                c.Draw(user="a", key="d", amount_fen=30_000),
                c.OpenPool(user="b", key="o", limit_fen=50_000),
            ]
        )
        with store.transaction() as tx:
            assert audit(tx) == []
            return pool_repo.read_books(tx)


def _pool(books: Books, user: str) -> StoredPool:
    return next(p for p in books.pools if p.user == user)


def _with_pool(books: Books, user: str, **changes: object) -> Books:
    pools = [dataclasses.replace(p, **changes) if p.user == user else p for p in books.pools]
    return dataclasses.replace(books, pools=pools)


def test_books_of_a_real_store_are_clean(books: Books) -> None:
    assert check(books) == []
    assert books.event_versions["a"] == EventVersions(2, 2)


def test_an_unbalanced_entry_is_named(books: Books) -> None:
    bad = dataclasses.replace(books, unbalanced=[Unbalanced("a", 2, 5, 0)])
    assert check(bad) == ["a v2: entry unbalanced (commitment 5, funds 0)"]


def test_a_ledger_that_disagrees_with_the_state_is_named(books: Books) -> None:
    balances = {**books.balances, "a": {**books.balances["a"], "principal": 1}}
    problems = check(dataclasses.replace(books, balances=balances))
    assert problems == ["a: ledger principal is 1, state says 30000"]


def test_columns_that_disagree_with_the_state_are_named(books: Books) -> None:
    columns = list(_pool(books, "b").columns)
    columns[1] = 1  # limit_fen
    problems = check(_with_pool(books, "b", columns=tuple(columns)))
    assert len(problems) == 1 and problems[0].startswith("b: columns ('open', 1,")


def test_a_state_that_does_not_parse_is_named(books: Books) -> None:
    state = json.loads(_pool(books, "b").state_json)
    del state["limit_fen"]
    problems = check(_with_pool(books, "b", state_json=json.dumps(state)))
    assert len(problems) == 1 and problems[0].startswith("b: stored state is invalid:")


def test_version_gaps_and_later_commands_are_named(books: Books) -> None:
    bad = dataclasses.replace(
        books,
        event_versions={**books.event_versions, "a": EventVersions(1, 2)},
        command_versions={**books.command_versions, "b": 7},
    )
    assert check(bad) == [
        "a: version 2 but events cover 1 versions up to 2",
        "b: a command records version 7 > 1",
    ]


def test_postings_without_a_pool_are_named(books: Books) -> None:
    bad = dataclasses.replace(books, pools=[p for p in books.pools if p.user != "b"])
    assert check(bad) == ["b: postings or events without a pool"]

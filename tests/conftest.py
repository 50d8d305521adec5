"""Shared fixtures: real brokers and databases, never mocks of them.

- `broker`: one private Mosquitto for the whole session (tests that do not fault it).
- `private_broker`: a fresh private Mosquitto for one test, to stop, kill and restart.
- `broker_factory`: several private brokers, or ones with custom settings.
- `open_broker`: a private Mosquitto without passwords or ACLs, for tests whose subject is a
  defence that must hold even when anyone can publish (it logs a warning).

Every broker but `open_broker` runs with the shipped security configuration (passwords, ACLs,
client id = username): a bridge made by tests/bridge/harness.py writes its accounts into it.
- `pg_dsn`: PostgreSQL from CP_TEST_PG_DSN, in a schema of its own that is dropped afterwards.
- `sqlite_path`: a temporary SQLite database file.
- `store_url`: parametrised over SQLite and PostgreSQL, for code that must run on both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.harness import postgres
from tests.harness.mosquitto import Mosquitto

# Hypothesis's per-example deadline is a wall-clock limit: on a loaded two-core machine it fails
# tests whose behaviour is right. Speed goals live in tools/bench.
settings.register_profile("project", deadline=None)
settings.load_profile("project")


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    mq = Mosquitto(tmp_path_factory.mktemp("mosquitto-session"), secure=True)
    mq.start()
    yield mq
    mq.stop()


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    started: list[Mosquitto] = []

    def make(**settings: object) -> Mosquitto:
        settings.setdefault("secure", True)
        mq = Mosquitto(tmp_path / f"mosquitto-{len(started)}", **settings)  # type: ignore[arg-type]
        mq.start()
        started.append(mq)
        return mq

    yield make
    for mq in started:
        mq.stop()


@pytest.fixture
def private_broker(broker_factory: Callable[..., Mosquitto]) -> Mosquitto:
    return broker_factory()


@pytest.fixture
def open_broker(broker_factory: Callable[..., Mosquitto]) -> Mosquitto:
    return broker_factory(secure=False)


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    dsn = postgres.base_dsn()
    if dsn is None:
        # A real absence: this machine has no PostgreSQL configured. .ci/run always sets it.
        pytest.skip(f"{postgres.ENV} is not set (see README: running the tests)")
    with postgres.private_schema(dsn) as private:
        yield private


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "test.sqlite3"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLite path or a PostgreSQL DSN: code under test must accept either."""
    if request.param == "sqlite":
        return str(tmp_path / "store.sqlite3")
    return str(request.getfixturevalue("pg_dsn"))

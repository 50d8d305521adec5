"""Retention on both dialects: old rows of `rejections`, `events` and `session_events` go in
bounded batches; the ledger, the pools and the device rows stay, and a resend of a pruned event
is still a duplicate."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import nacl.signing
import pytest

from cloud_bridge.config import BridgeConfig
from cloud_bridge.ingest import Inbound, Ingest
from cloud_bridge.pool.commands import Draw, OpenPool
from cloud_bridge.pool.service import PoolService
from cloud_bridge.publish import Publisher
from cloud_bridge.registry import Registry
from cloud_bridge.retention import DAY_MS, Pruned, Pruner, Retention, prune_round
from cloud_bridge.store import Store, open_store
from cloud_bridge.store import ingest_repo as repo
from cloud_bridge.store.ingest_repo import LogRow, RejectionRow
from protocol import envelope, topics
from protocol import messages as m
from protocol.errors import Reason
from protocol.topics import Channel

NOW_MS = 1_800_000_000_000
BATCH = 100
RETENTION = Retention(
    rejections_days=30, rejections_max_rows=1000, events_days=365, session_events_days=90,
    batch_rows=BATCH, interval_s=60.0,
)  # fmt: skip
POOL_TABLES = ("pools", "pool_commands", "pool_events", "pool_postings", "devices")


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_store(store_url) as s:
        yield s


def days_ago(days: float) -> int:
    return NOW_MS - int(days * DAY_MS)


def fill(store: Store) -> None:
    """1,500 rejections in time order: 500 from 60 to 31 days old, 1,000 in the last 29 days;
    600 events one a day, from 600 days old to 1; 300 session events, from 300 days old to 1."""
    ages = [60 - i * 0.058 for i in range(500)] + [29 - i * 0.029 for i in range(1000)]
    rejections = [
        RejectionRow(days_ago(age), "cp/v1/f/d/report", "d", "bad_cbor", "", b"\xff")
        for age in ages
    ]
    events = [LogRow("dev-1", i + 1, 3, days_ago(600 - i), b"e") for i in range(600)]
    sessions = [LogRow("dev-1", i + 1, 1, days_ago(300 - i), b"s") for i in range(300)]
    with store.transaction() as tx:
        repo.append_rejections(tx, rejections)
        repo.append_events(tx, events)
        repo.append_session_events(tx, sessions)
    service = PoolService(store, clock=lambda: days_ago(1000))  # the ledger is older than all
    service.execute(OpenPool(user="user-1", key="open", limit_fen=500_000))
    service.execute(Draw(user="user-1", key="draw", amount_fen=1000))


def snapshot(store: Store, tables: tuple[str, ...]) -> dict[str, list[tuple[object, ...]]]:
    with store.transaction() as tx:
        return {t: sorted(map(repr, tx.fetchall(f"SELECT * FROM {t}"))) for t in tables}  # type: ignore[misc]


def test_pruning_goes_in_bounded_batches_and_keeps_the_ledger(store: Store) -> None:
    fill(store)
    kept_before = snapshot(store, POOL_TABLES)
    rounds: list[Pruned] = []
    while not rounds or rounds[-1].full(BATCH):
        rounds.append(prune_round(store, RETENTION, NOW_MS))
        assert len(rounds) < 100
    for r in rounds:
        assert max(r.rejections, r.events, r.session_events) <= BATCH  # never one huge delete
    assert len(rounds) == 6  # 500 rejections in 5 full batches, then one that finds nothing
    assert sum(r.rejections for r in rounds) == 500  # the age limit leaves 1,000: the count's
    assert sum(r.events for r in rounds) == 235  # older than 365 days: ages 600..366
    assert sum(r.session_events for r in rounds) == 210  # older than 90 days: ages 300..91
    with store.transaction() as tx:
        oldest = tx.fetchall("SELECT MIN(received_ms), COUNT(*) FROM rejections")[0]
        events = [int(r[0]) for r in tx.fetchall("SELECT seq FROM events ORDER BY seq")]
        sessions = [int(r[0]) for r in tx.fetchall("SELECT seq FROM session_events ORDER BY seq")]
    assert int(oldest[1]) == 1000 and int(oldest[0]) >= days_ago(30)
    assert events == list(range(236, 601))
    assert sessions == list(range(211, 301))
    assert snapshot(store, POOL_TABLES) == kept_before  # journal, ledger, pools, devices


def test_the_count_limit_keeps_the_newest_rows(store: Store) -> None:
    fill(store)
    by_count = replace(RETENTION, rejections_days=0, rejections_max_rows=250)
    with store.transaction() as tx:
        newest = tx.fetchall("SELECT id FROM rejections ORDER BY id DESC LIMIT 250")
    while prune_round(store, by_count, NOW_MS).full(BATCH):
        pass
    with store.transaction() as tx:
        assert sorted(tx.fetchall("SELECT id FROM rejections")) == sorted(newest)


def test_zero_keeps_everything(store: Store) -> None:
    fill(store)
    forever = replace(
        RETENTION, rejections_days=0, rejections_max_rows=0, events_days=0, session_events_days=0
    )
    assert prune_round(store, forever, NOW_MS) == Pruned(0, 0, 0)


def test_a_resend_of_a_pruned_event_is_still_a_duplicate(store_url: str, tmp_path: Path) -> None:
    key = nacl.signing.SigningKey(bytes(range(32)))
    with open_store(store_url) as store:
        registry = Registry()
        record = m.Enrollment(
            sender="dev-1", seq=1, boot=0, ts_ms=1, fleet="f", device_kind="phone",
            public_key=bytes(key.verify_key),
        )  # fmt: skip
        with store.transaction() as tx:
            registry.enroll(tx, envelope.seal(record, key), "user-1", 1, fleet="f")
        cfg = BridgeConfig(path=None, data_dir=tmp_path, fleet="f", store_url=store_url)
        publisher = Publisher("bridge-1", nacl.signing.SigningKey(bytes(32)), store)
        ingest = Ingest(store, registry, publisher, PoolService(store), cfg)
        topic = topics.device("f", "dev-1", Channel.REPORT)

        def send(seq: int, received_ms: int) -> tuple[int, dict[Reason, int]]:
            report = m.Report(
                sender="dev-1", seq=seq, boot=1, ts_ms=1, model_id="risk-v1",
                model_sha256=bytes(32), risk_pm=10, features=b"\x00", mono_ms=1,
            )  # fmt: skip
            result = ingest.process([Inbound(topic, envelope.seal(report, key), received_ms)])
            return result.accepted, dict(result.rejected)

        assert [send(s, days_ago(400)) for s in (1, 2, 3)] == [(1, {})] * 3
        while prune_round(store, RETENTION, NOW_MS).full(BATCH):
            pass
        with store.transaction() as tx:
            assert tx.scalar("SELECT COUNT(*) FROM events") == 0
        # The device row's replay window, not the log, says what was seen.
        assert send(2, NOW_MS) == (0, {Reason.REPLAY: 1})
        assert send(4, NOW_MS) == (1, {})
        with store.transaction() as tx:
            assert [r[0] for r in tx.fetchall("SELECT seq FROM events")] == [4]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_pruner_runs_when_due_and_catches_up_at_once(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    fill(store)
    clock = Clock()
    pruner = Pruner(store, RETENTION, wall_ms=lambda: NOW_MS, mono_s=clock)
    first = pruner.step()  # due at start
    assert first is not None and first.full(BATCH)
    rounds = 1
    while (r := pruner.step()) is not None:  # more to do: the next round is due at once
        rounds += 1
        last = r
    assert rounds == 6 and last == Pruned(0, 0, 0)  # 5 full rounds, then one to find none
    clock.now += RETENTION.interval_s - 1
    assert pruner.step() is None
    clock.now += 1
    assert pruner.step() == Pruned(0, 0, 0)
    # A round that fails is logged and tried again after the interval; nothing is raised.
    store.close()
    clock.now += RETENTION.interval_s
    with caplog.at_level(logging.WARNING):
        assert pruner.step() is None
    assert "pruning failed" in caplog.text
    assert pruner.step() is None  # not due again until the interval has passed


def test_settled_step_ups_go_with_their_events_and_pending_ones_stay(store: Store) -> None:
    from cloud_bridge.risk.stepup import PendingStepUp, Status
    from cloud_bridge.store import stepup_repo
    from cloud_bridge.store.stepup_repo import StepUpRow

    def row(i: int, age_days: int, status: Status) -> StepUpRow:
        opened = days_ago(age_days)
        p = PendingStepUp(f"d:{i}", "u", "phone", bytes(16), opened, opened + 120_000, status)
        return StepUpRow(p, "d", i, "f", i)

    with store.transaction() as tx:
        stepup_repo.insert(
            tx,
            [
                row(1, 400, Status.CONFIRMED),  # older than events_days (365): pruned
                row(2, 400, Status.EXPIRED),  # pruned
                row(3, 400, Status.PENDING),  # kept: the worker settles it first
                row(4, 10, Status.DECLINED),  # young: kept
            ],
        )
    assert prune_round(store, RETENTION, NOW_MS).stepups == 2
    with store.transaction() as tx:
        left = sorted(str(r[0]) for r in tx.fetchall("SELECT event FROM stepups"))
    assert left == ["d:3", "d:4"]

"""The logs read back (cloud_bridge.store.logs_repo) on both dialects: what the ingest wrote,
filtered by device and kind, in device and sequence order; keys of every status."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cloud_bridge.store import Store, logs_repo, open_store, registry_repo
from cloud_bridge.store import ingest_repo as repo
from cloud_bridge.store.ingest_repo import LogRow, RejectionRow
from cloud_bridge.store.logs_repo import StoredRejection
from cloud_bridge.store.registry_repo import Device, DeviceKey
from protocol.replay import ReplayWindow

REPORT, TRIGGER = 3, 4  # kind numbers as stored; the repository does not interpret them


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_store(store_url) as s:
        empty = ReplayWindow().to_bytes()
        with s.transaction() as tx:
            for n, device_id in enumerate(("a-1", "b-2")):
                device = Device(device_id, "f1", f"u-{n}", "ev", "active", {}, {}, 1, 1)
                registry_repo.insert_device(tx, device, empty, empty)
            repo.append_events(
                tx,
                [
                    LogRow("b-2", 2, REPORT, 20, b"b2"),
                    LogRow("a-1", 2, TRIGGER, 12, b"a2"),
                    LogRow("b-2", 1, TRIGGER, 19, b"b1"),
                    LogRow("a-1", 1, REPORT, 11, b"a1"),
                    LogRow("a-1", 3, REPORT, 13, b"a3"),
                ],
            )
            repo.append_rejections(
                tx,
                [
                    RejectionRow(30, "cp/v1/f1/a-1/report", "a-1", "replay", "seq 1", b"x"),
                    RejectionRow(31, "cp/v1/f1/zz/report", None, "bad_topic", "what", b"y"),
                    RejectionRow(32, "cp/v1/f1/a-1/trigger", "a-1", "seq_conflict", "seq 2", b""),
                ],
            )
        yield s


def test_events__all_of_one_device_or_of_one_kind_in_sequence_order(store: Store) -> None:
    with store.transaction() as tx:
        every = [(r.device_id, r.seq) for r in logs_repo.events(tx)]
        mine = logs_repo.events(tx, "a-1")
        reports = [(r.device_id, r.seq) for r in logs_repo.events(tx, kind=REPORT)]
        my_reports = [(r.device_id, r.seq) for r in logs_repo.events(tx, "a-1", REPORT)]
        numbers = logs_repo.event_numbers(tx)
    assert every == [("a-1", 1), ("a-1", 2), ("a-1", 3), ("b-2", 1), ("b-2", 2)]
    assert mine == [
        LogRow("a-1", 1, REPORT, 11, b"a1"),
        LogRow("a-1", 2, TRIGGER, 12, b"a2"),
        LogRow("a-1", 3, REPORT, 13, b"a3"),
    ]
    assert reports == [("a-1", 1), ("a-1", 3), ("b-2", 2)]
    assert my_reports == [("a-1", 1), ("a-1", 3)]
    assert numbers == every


def test_rejections__all_or_of_one_device_in_the_order_stored(store: Store) -> None:
    with store.transaction() as tx:
        every = logs_repo.rejections(tx)
        mine = logs_repo.rejections(tx, "a-1")
        nobody = logs_repo.rejections(tx, "b-2")
    assert [r.reason for r in every] == ["replay", "bad_topic", "seq_conflict"]
    assert every[1] == StoredRejection(31, "cp/v1/f1/zz/report", None, "bad_topic", "what")
    assert [(r.received_ms, r.detail) for r in mine] == [(30, "seq 1"), (32, "seq 2")]
    assert nobody == []


def test_all_keys__every_status_by_device_and_generation(store: Store) -> None:
    with store.transaction() as tx:
        for kid, device, generation, status in (
            (b"k2" * 4, "b-2", 1, "revoked"),
            (b"k1" * 4, "a-1", 2, "active"),
            (b"k0" * 4, "a-1", 1, "retired"),
        ):
            registry_repo.insert_key(tx, DeviceKey(kid, device, bytes(32), generation, status), 1)
        keys = registry_repo.all_keys(tx)
    assert [(k.device_id, k.generation, k.status) for k in keys] == [
        ("a-1", 1, "retired"),
        ("a-1", 2, "active"),
        ("b-2", 1, "revoked"),
    ]

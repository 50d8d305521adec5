"""The ingest repository on both dialects: what a batch writes in one statement per table
reads back the same (SQLite executemany, PostgreSQL one array per column)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from cloud_bridge.device_state import DeviceState
from cloud_bridge.risk import sequence as sq
from cloud_bridge.risk import signals
from cloud_bridge.risk.clone import CloneState
from cloud_bridge.risk.fingerprint import Drift
from cloud_bridge.risk.skew import Envelope
from cloud_bridge.risk.travel import Fix, State
from cloud_bridge.risk.user_signals import UserMemory
from cloud_bridge.store import Store, open_store, registry_repo
from cloud_bridge.store import ingest_repo as repo
from cloud_bridge.store.ingest_repo import LogRow, OutputRow, RejectionRow
from cloud_bridge.store.registry_repo import Device, DeviceKey
from protocol.replay import ReplayWindow

N = 600  # more than one CHUNK of ids


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_store(store_url) as s:
        empty = ReplayWindow().to_bytes()
        with s.transaction() as tx:
            for i in range(N):
                device = Device(f"d-{i:04d}", "f1", f"u-{i}", "ev", "active", {}, {}, 1, 1)
                registry_repo.insert_device(tx, device, empty, empty)
                key = DeviceKey(bytes([i % 256, i // 256]) * 4, device.device_id, bytes(32), 1,
                                "active" if i % 2 else "revoked")  # fmt: skip
                registry_repo.insert_key(tx, key, 1)
        yield s


def test_devices_round_trip_in_one_write(store: Store) -> None:
    ids = {f"d-{i:04d}" for i in range(0, N, 2)} | {"nobody"}
    with store.transaction() as tx:
        states = repo.lock_devices(tx, ids)
        assert sorted(states) == sorted(ids - {"nobody"})
        assert list(states) == sorted(states)  # in device-id order, as locked
        changed = [
            replace(
                s,
                data=ReplayWindow().accept(5),
                streak=2,
                last_boot=7,
                online=True,
                risk_q=-7 * (i % 3) if i % 3 else None,
                risk_tamper=("score_mismatch", "features_mismatch")[: i % 3],
                # the per-device signals' memory (migration 007), JSON on the device row
                risk_memory=signals.Memory(
                    clone=CloneState(
                        boot=3,
                        seqs=((i, 1000 + i),),
                        envelope=Envelope().add(1000, 2_000_000),
                        fp_far=(True, False),
                        digests=(bytes([i % 256]) * 8,),
                    ),
                    drift=Drift(6.5 + i, i),
                    centre=signals.Centre(-80 * 16 - i, i),
                )
                if i % 2
                else signals.Memory(),
            )
            for i, s in enumerate(states.values())
        ]
        repo.save_devices(tx, changed, now_ms=99)
    with store.transaction() as tx:
        again = repo.lock_devices(tx, ids)
        untouched = repo.lock_devices(tx, {"d-0001"})
    assert set(again.values()) == set(changed)
    assert [s.risk_memory for s in again.values()] == [s.risk_memory for s in changed]
    assert untouched["d-0001"] == DeviceState(
        "d-0001", "f1", "u-1", "active", ReplayWindow(), ReplayWindow(), 0, 0, False, "ev"
    )


def test_users_risk_memory_round_trips_and_upserts(store: Store) -> None:
    # migration 011_user_risk: per-user memory (travel across devices, the trigger sequence)
    mem = UserMemory(
        State(Fix(5, 312_304_000, 1_214_737_000, 10, "gps", "d-0001")),
        (sq.Event("restock", 12_000, 9, "d-0001"), sq.Event("emergency", 0, 23, "d-0003")),
        sq.State("emergency", 1.25),
    )
    users = {f"u-{i}" for i in range(N)}
    with store.transaction() as tx:
        assert repo.lock_users(tx, users) == {}  # no row yet: every user starts fresh
        repo.save_users(tx, {u: mem for u in users}, now_ms=7)
    later = UserMemory(State(Fix(9, 0, 0, 500_000, "ip", "d-0002")))
    with store.transaction() as tx:
        got = repo.lock_users(tx, users | {"nobody"})
        assert sorted(got) == sorted(users) and set(got.values()) == {mem}
        repo.save_users(tx, {"u-1": later}, now_ms=8)  # an existing row is replaced
    with store.transaction() as tx:
        got = repo.lock_users(tx, {"u-1", "u-2"})
    assert got == {"u-1": later, "u-2": mem}


def test_key_statuses_of_a_batch(store: Store) -> None:
    kids = {bytes([i % 256, i // 256]) * 4 for i in range(N)} | {b"unknown!"}
    with store.transaction() as tx:
        statuses = repo.key_statuses(tx, kids)
        found = registry_repo.keys(tx, kids)
        preload = registry_repo.active_keys(tx, 100)
    assert len(preload) == 100 and {k.status for k in preload} == {"active"}
    assert statuses[b"unknown!"] == "unknown"
    assert statuses[bytes([3, 0]) * 4] == "active"
    assert statuses[bytes([4, 0]) * 4] == "revoked"
    assert len(found) == N


def test_logs_and_stored_envelopes(store: Store) -> None:
    events = [LogRow(f"d-{i % 7:04d}", i, 3, 10 + i, bytes([i % 256]) * 50) for i in range(N)]
    births = [LogRow("d-0001", 1, 1, 5, b"birth")]
    refused = [
        RejectionRow(1, "cp/v1/f1/x/report", None, "bad_topic", "d" * 300, b"e" * 9000),
        RejectionRow(2, "t" * 300, "d-0002", "stale", "sequence 1", b""),
    ]
    with store.transaction() as tx:
        repo.append_events(tx, events)
        repo.append_session_events(tx, births)
        repo.append_rejections(tx, refused)
    wanted = {(e.device_id, e.seq) for e in events[::3]} | {("d-0001", 10_000)}
    with store.transaction() as tx:
        stored = repo.stored_envelopes(tx, wanted)
        session = tx.fetchall("SELECT device_id, kind, seq, envelope FROM session_events")
        rows = tx.fetchall(
            "SELECT device_id, length(topic), length(detail), length(envelope) FROM rejections "
            "ORDER BY received_ms"
        )
    assert stored == {(e.device_id, e.seq): e.envelope for e in events[::3]}
    assert [(r[0], r[1], r[2], bytes(r[3])) for r in session] == [("d-0001", 1, 1, b"birth")]
    assert [tuple(r) for r in rows] == [(None, 17, 256, 8192), ("d-0002", 256, 10, 0)]


def test_outputs_stored_then_forgotten(store: Store) -> None:
    rows = [OutputRow("b1", i, f"t/{i}", bytes([i % 256]), i % 2 == 0) for i in range(1, N)]
    with store.transaction() as tx:
        repo.store_outputs(tx, rows, now_ms=5)
        repo.store_outputs(tx, [OutputRow("b2", 1, "t", b"x", False)], now_ms=5)
    with store.transaction() as tx:
        repo.forget_outputs(tx, [("b1", i) for i in range(1, N, 2)])
    with store.transaction() as tx:
        left = repo.pending_outputs(tx, "b1")
        other = repo.pending_outputs(tx, "b2")
    assert left == rows[1::2]
    assert other == [OutputRow("b2", 1, "t", b"x", False)]


def test_counters_hand_out_blocks(store: Store) -> None:
    with store.transaction() as tx:
        first = repo.bump_counter(tx, "b1", 1000)
        second = repo.bump_counter(tx, "b1", 1000)
    assert (first, second) == (1, 1001)


def test_two_bridges_take_turns_on_a_users_first_memory(pg_dsn: str) -> None:
    """Two bridges judging the same new user's first events at once (PostgreSQL): the second
    waits for the first's commit and builds on its memory instead of starting fresh and
    overwriting it (the lock has a row to hold before either writes one)."""
    first_mem = UserMemory(State(Fix(5, 1, 2, 10, "gps", "d-a")))
    with open_store(pg_dsn) as a, open_store(pg_dsn) as b, open_store(pg_dsn) as watcher:
        seen: dict[str, UserMemory] = {}
        pid: list[int] = []
        with a.transaction() as tx_a:
            assert repo.lock_users(tx_a, {"u-new"}) == {}
            second = threading.Thread(target=lambda: seen.update(_lock_one(b, "u-new", pid)))
            second.start()
            assert _waits_on_a_lock(watcher, pid), "the second bridge did not wait for the first"
            repo.save_users(tx_a, {"u-new": first_mem}, now_ms=1)
        second.join(timeout=30)
    assert seen == {"u-new": first_mem}


def _lock_one(store: Store, user: str, pid: list[int]) -> dict[str, UserMemory]:
    with store.transaction() as tx:
        pid.append(int(tx.fetchall("SELECT pg_backend_pid()")[0][0]))  # for the watcher
        return repo.lock_users(tx, {user})


def _waits_on_a_lock(watcher: Store, pid: list[int]) -> bool:
    """True once the second bridge's backend (its pid, once it has one) waits on a lock (polled;
    a bound, not a timing assertion: without the fix the second bridge never waits). Only that
    backend counts: other tests share the database and may wait on locks of their own."""
    for _ in range(300):
        with watcher.transaction() as tx:
            rows = tx.fetchall(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ? AND wait_event_type = 'Lock'",
                (pid[0] if pid else -1,),
            )
        if rows[0][0]:
            return True
        time.sleep(0.05)
    return False

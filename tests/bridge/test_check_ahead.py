"""A batch verified ahead (`Ingest.check`, the checker thread of `cloud-bridge run`) is judged
on the registry as it is when its transaction runs, not as it was when it was verified.

The checker verifies the next batch while the worker commits the one before, against the
registry cache; these tests pin what that must not change: a device revoked in between is
refused, a kid the cache did not hold is read by the worker, and the check itself needs no
database. Real `Ingest` on SQLite and PostgreSQL, real signatures.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nacl.signing
import pytest

from cloud_bridge.config import BridgeConfig
from cloud_bridge.ingest import Inbound, Ingest
from cloud_bridge.pool.service import PoolService
from cloud_bridge.publish import Publisher
from cloud_bridge.registry import Registry
from cloud_bridge.store import Store, open_store
from protocol import envelope, topics
from protocol import messages as m
from protocol.errors import Reason
from protocol.topics import Channel

FLEET = "f"
KEY = nacl.signing.SigningKey(bytes(range(1, 33)))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_store(store_url) as s:
        yield s


def report(seq: int) -> Inbound:
    msg = m.Report(
        sender="dev-1", seq=seq, boot=1, ts_ms=1, model_id="risk-v1", model_sha256=bytes(32),
        risk_pm=10, features=bytes(20), mono_ms=seq, fingerprint={j: j for j in range(24)},
    )  # fmt: skip
    return Inbound(topics.device(FLEET, "dev-1", Channel.REPORT), envelope.seal(msg, KEY), 1, 0)


def setup(store: Store, store_url: str, tmp_path: Path, registry: Registry) -> Ingest:
    enrollment = m.Enrollment(
        sender="dev-1", seq=1, boot=0, ts_ms=1, fleet=FLEET, device_kind="phone",
        public_key=bytes(KEY.verify_key),
    )  # fmt: skip
    with store.transaction() as tx:
        registry.enroll(tx, envelope.seal(enrollment, KEY), "u", 1, fleet=FLEET)
    cfg = BridgeConfig(path=None, data_dir=tmp_path, fleet=FLEET, store_url=store_url)
    publisher = Publisher("bridge-1", nacl.signing.SigningKey(bytes(32)), store)
    return Ingest(store, registry, publisher, PoolService(store), cfg)


def stored_events(store: Store) -> int:
    with store.transaction() as tx:
        return int(tx.scalar("SELECT count(*) FROM events"))


def test_a_device_revoked_after_the_check_is_refused(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    registry = Registry()
    ingest = setup(store, store_url, tmp_path, registry)
    with store.transaction() as tx:
        registry.preload(tx)
    checked = ingest.check([report(1), report(2)])
    assert len(checked.verified) == 2 and not checked.missed  # verified with the cached key
    with store.transaction() as tx:
        registry.revoke(tx, "dev-1")
    result = ingest.process_checked(checked)
    assert result.accepted == 0
    assert dict(result.rejected) == {Reason.REVOKED_KEY: 2}
    assert stored_events(store) == 0


def test_a_kid_missing_from_the_cache_is_read_by_the_worker(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    ingest = setup(store, store_url, tmp_path, Registry())
    ingest.registry.forget()  # as after a restart past the preload, or a new enrollment
    checked = ingest.check([report(1), report(2)])
    assert (len(checked.verified), len(checked.missed)) == (0, 2)
    result = ingest.process_checked(checked)
    assert result.accepted == 2
    assert stored_events(store) == 2


def test_the_check_needs_no_database(store: Store, store_url: str, tmp_path: Path) -> None:
    registry = Registry()
    ingest = setup(store, store_url, tmp_path, registry)
    with store.transaction() as tx:
        registry.preload(tx)
    store.close()  # the checker thread never touches the store: a closed one does not matter
    forged = Inbound(report(3).topic, report(3).payload[:-1] + b"\x00", 1, 0)
    checked = ingest.check([report(1), forged, report(2)])
    assert [v.signed.message.seq for v in checked.verified] == [1, 2]
    assert [r.rejection.reason for r in checked.refused] == [Reason.BAD_SIGNATURE]

"""A compromised device cannot multiply what its keys may do by rotating them.

Found in review: a rotation signed by the device's active key was accepted however many
unused newer keys it had already registered, and each active key had a refusal budget of its
own, so a device that rotated 20 times (all signed by its first key) held 21 active keys and
stored 1,200 refusals in a minute against a budget of 60. Now a rotation retires every key of
the device but its signer and the new one, and refusals are charged to the enrolled device.
Real `Ingest` on SQLite and PostgreSQL, real signatures.
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
from protocol import cose, envelope, topics
from protocol import messages as m
from protocol.topics import Channel

FLEET = "f"
ROTATIONS = 20
PER_KEY, PER_REASON = 60, 60  # the defaults of [rejections]


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_store(store_url) as s:
        yield s


def enrollment(gen: int, key: nacl.signing.SigningKey, prev: bytes = b"") -> m.Enrollment:
    return m.Enrollment(
        sender="dev-1", seq=gen, boot=0, ts_ms=1, fleet=FLEET, device_kind="phone",
        public_key=bytes(key.verify_key), prev_kid=prev,
    )  # fmt: skip


def misplaced(i: int) -> m.Report:
    """A report of the device, published on its trigger topic: refused as topic_mismatch after
    its signature verified."""
    return m.Report(
        sender="dev-1", seq=i + 1, boot=1, ts_ms=1, model_id="risk-v1", model_sha256=bytes(32),
        risk_pm=10, features=bytes(20), mono_ms=1, fingerprint={j: j for j in range(24)},
    )  # fmt: skip


def test_rotations_signed_by_one_key_leave_two_active_keys_and_one_budget(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    registry = Registry()
    first = nacl.signing.SigningKey(bytes(range(1, 33)))
    with store.transaction() as tx:
        registry.enroll(tx, envelope.seal(enrollment(1, first), first), "u", 1, fleet=FLEET)
    cfg = BridgeConfig(path=None, data_dir=tmp_path, fleet=FLEET, store_url=store_url)
    assert (cfg.refusals_per_key, cfg.refusals_per_reason) == (PER_KEY, PER_REASON)
    now = [0.0]
    publisher = Publisher("bridge-1", nacl.signing.SigningKey(bytes(32)), store)
    ingest = Ingest(store, registry, publisher, PoolService(store), cfg, mono_s=lambda: now[0])

    minted = [nacl.signing.SigningKey(bytes([g]) * 32) for g in range(2, ROTATIONS + 2)]
    prev = cose.kid_for(first.verify_key)
    rotations = [
        Inbound(
            topics.device(FLEET, "dev-1", Channel.ENROLL),
            envelope.seal(enrollment(g, key, prev), first),
            1,
            0,
        )
        for g, key in enumerate(minted, start=2)
    ]
    assert ingest.process(rotations).accepted == ROTATIONS  # each one is a valid rotation
    with store.transaction() as tx:
        active = {
            bytes(kid)
            for (kid,) in tx.fetchall(
                "SELECT kid FROM device_keys WHERE device_id = 'dev-1' AND status = 'active'"
            )
        }
    assert active == {prev, cose.kid_for(minted[-1].verify_key)}

    flood = [
        Inbound(
            topics.device(FLEET, "dev-1", Channel.TRIGGER), envelope.seal(misplaced(i), key), 2, 0
        )
        for key in (first, *minted)
        for i in range(100)
    ]
    ingest.process(flood)
    with store.transaction() as tx:
        rows = int(tx.scalar("SELECT COUNT(*) FROM rejections"))
    # the device's own budget (its two active keys share it), and the retired keys' refusals
    # in the per-reason budget of retired_key: 120 at most, where 1,200 were stored before
    assert rows <= PER_KEY + PER_REASON

"""A flood of forged messages from made-up device ids leaves the database small.

100,000 messages through `Ingest.process` (real SQLite and PostgreSQL, real signatures), the
flood spread over ten simulated minutes: signed by one unenrolled key, signed by an enrolled
key for other devices, unsigned and garbage, each from a random device id. The device ids are
the sender's choice, so they open no budget of their own: what is stored is bounded by the
minutes times the budget of each source (the enrolled device whose key verified, or the reason
when none verified).

Measured (2-core VM): 2,400 rows in `rejections` and 2,400 signed risk notes in `outputs`; the
SQLite file 1.6 MB, the PostgreSQL schema 2.2 MB (asserted: at most 3 MB and 4 MB). With the
budget keyed by the device id the topic names, as before, every one of these messages had a
budget of its own: 100,000 rows, 100,000 notes and a 60 MB SQLite file.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nacl.signing
import pytest

from cloud_bridge.config import BridgeConfig
from cloud_bridge.ingest import Inbound, Ingest
from cloud_bridge.pool.service import PoolService
from cloud_bridge.publish import Publisher
from cloud_bridge.refusals import WINDOW_S
from cloud_bridge.registry import Registry
from cloud_bridge.store import Store, open_store
from protocol import cose, envelope, topics
from protocol import messages as m
from protocol.errors import Reason
from protocol.topics import Channel

FLEET = "flood"
MESSAGES = 100_000
BATCH = 1000
MINUTES = 10
PER_KEY, PER_REASON = 60, 60  # the defaults of [rejections]
SQLITE_MAX_BYTES = 3_000_000
PG_MAX_BYTES = 4_000_000
SHA = bytes(32)


def report(sender: str, seq: int) -> m.Report:
    return m.Report(
        sender=sender, seq=seq, boot=1, ts_ms=1, model_id="risk-v1", model_sha256=SHA,
        risk_pm=10, features=bytes(20), mono_ms=1, fingerprint={i: i for i in range(24)},
    )  # fmt: skip


@dataclass(frozen=True)
class Forged:
    topic: str
    payload: bytes
    reason: Reason  # what it was built to provoke
    source: bytes | Reason  # what the budget charges: the verified kid, or the reason


@dataclass(frozen=True)
class Flood:
    enrolled: nacl.signing.SigningKey
    messages: list[Forged]


@pytest.fixture(scope="module")
def flood() -> Flood:
    rng = random.Random(12)
    enrolled = nacl.signing.SigningKey(bytes(range(1, 33)))
    stranger = nacl.signing.SigningKey(bytes(range(2, 34)))
    kid = cose.kid_for(enrolled.verify_key)
    own = envelope.seal(report("dev-real", 1), enrolled)
    unsigned = m.encode(report("dev-real", 1))

    def device() -> str:
        return f"d{rng.getrandbits(48):012x}"

    def topic(dev: str) -> str:
        return topics.device(FLEET, dev, Channel.REPORT)

    messages: list[Forged] = []
    for i in range(MESSAGES):
        dev = device()
        match i % 10:
            case 0 | 1 | 2 | 3:  # signed by a key nobody enrolled
                seal = envelope.seal(report(dev, i + 1), stranger)
                messages.append(
                    Forged(topic(dev), seal, Reason.UNKNOWN_DEVICE, Reason.UNKNOWN_DEVICE)
                )
            case 4:  # an enrolled key's own message under another device's topic
                messages.append(Forged(topic(dev), own, Reason.TOPIC_MISMATCH, kid))
            case 5:  # an enrolled key signing for another device
                seal = envelope.seal(report(dev, i + 1), enrolled)
                messages.append(Forged(topic(dev), seal, Reason.SENDER_MISMATCH, kid))
            case 6 | 7:  # not CBOR at all
                junk = b"\xff" + os.urandom(rng.randrange(8, 300))
                messages.append(Forged(topic(dev), junk, Reason.BAD_CBOR, Reason.BAD_CBOR))
            case _:  # a report without its envelope
                messages.append(Forged(topic(dev), unsigned, Reason.NOT_COSE, Reason.NOT_COSE))
    rng.shuffle(messages)
    return Flood(enrolled, messages)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_store(store_url) as s:
        yield s


def expected_rows(flood: Flood) -> int:
    """The budget as the operator reads it: per minute, each source keeps at most its share."""
    per_minute: Counter[tuple[int, bytes | Reason]] = Counter()
    for i, msg in enumerate(flood.messages):
        per_minute[(minute_of(i // BATCH), msg.source)] += 1
    return sum(
        min(n, PER_KEY if isinstance(source, bytes) else PER_REASON)
        for (_, source), n in per_minute.items()
    )


def minute_of(batch: int) -> int:
    return int(batch * seconds_per_batch() // WINDOW_S)


def seconds_per_batch() -> float:
    return MINUTES * WINDOW_S / (MESSAGES // BATCH)


def database_bytes(store: Store, store_url: str) -> int:
    """The whole database: the SQLite file once closed (its write-ahead log checkpointed into
    it), or every table of the PostgreSQL schema with its indexes and TOAST."""
    if store.dialect == "sqlite":
        store.close()
        return os.path.getsize(store_url)
    with store.transaction() as tx:
        return int(
            tx.scalar(
                "SELECT SUM(pg_total_relation_size(c.oid)) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relkind = 'r'"
            )
        )


def test_a_flood_of_forgeries_from_random_device_ids_stays_small(
    flood: Flood, store: Store, store_url: str, tmp_path: Path
) -> None:
    registry = Registry()
    record = m.Enrollment(
        sender="dev-real", seq=1, boot=0, ts_ms=1, fleet=FLEET, device_kind="phone",
        public_key=bytes(flood.enrolled.verify_key),
    )  # fmt: skip
    with store.transaction() as tx:
        registry.enroll(tx, envelope.seal(record, flood.enrolled), "user-real", 1, fleet=FLEET)
    cfg = BridgeConfig(path=None, data_dir=tmp_path, fleet=FLEET, store_url=store_url)
    clock = Clock()
    publisher = Publisher("bridge-1", nacl.signing.SigningKey(bytes(32)), store)
    ingest = Ingest(store, registry, publisher, PoolService(store), cfg, mono_s=clock)
    assert (cfg.refusals_per_key, cfg.refusals_per_reason) == (PER_KEY, PER_REASON)

    rejected: Counter[Reason] = Counter()
    unstored: Counter[Reason] = Counter()
    accepted = 0
    for b in range(MESSAGES // BATCH):
        clock.now = b * seconds_per_batch()
        batch = [
            Inbound(f.topic, f.payload, 1_000 + b, 0)
            for f in flood.messages[b * BATCH : (b + 1) * BATCH]
        ]
        result = ingest.process(batch)
        accepted += result.accepted
        rejected.update(result.rejected)
        unstored.update(result.unstored)

    # Every message refused with the reason it was built for, and counted.
    assert accepted == 0
    assert rejected == Counter(f.reason for f in flood.messages)
    with store.transaction() as tx:
        rows = int(tx.scalar("SELECT COUNT(*) FROM rejections"))
        notes = int(tx.scalar("SELECT COUNT(*) FROM outputs"))
        stored = Counter(
            {Reason(r): int(n) for r, n in tx.fetchall(
                "SELECT reason, COUNT(*) FROM rejections GROUP BY reason")}
        )  # fmt: skip
        nothing_else = [
            int(tx.scalar(f"SELECT COUNT(*) FROM {t}"))
            for t in ("events", "session_events", "pool_postings")
        ]
    # What was stored is the budget, minute by minute; the rest only counted.
    assert rows == expected_rows(flood) == MINUTES * (PER_KEY + 3 * PER_REASON)
    assert stored + unstored == rejected
    assert notes == rows  # one signed risk note per stored refusal, none for the rest
    assert nothing_else == [0, 0, 0]
    size = database_bytes(store, store_url)
    limit = SQLITE_MAX_BYTES if store.dialect == "sqlite" else PG_MAX_BYTES
    assert size <= limit, f"{store.dialect}: {size} bytes"
    print(f"{store.dialect}: {rows} rejections, {notes} notes, {size / 1e6:.2f} MB")

"""The SQL of reading the bridge's logs back: stored events and rejections, for the tools and
harnesses that look at what a bridge did (the fleet simulator, the HIL bench, the benchmarks,
the live risk evaluation). The bridge itself writes these tables through `ingest_repo` and
never reads them this way.

Every function runs inside the caller's transaction and returns values; none decides anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from cloud_bridge.store.base import Transaction
from cloud_bridge.store.ingest_repo import LogRow


@dataclass(frozen=True, slots=True)
class StoredRejection:
    """One row of `rejections`, as stored (topic, detail and envelope already cut)."""

    received_ms: int
    topic: str
    device_id: str | None
    reason: str
    detail: str


def events(tx: Transaction, device_id: str | None = None, kind: int | None = None) -> list[LogRow]:
    """The stored data events (all, or one device's, or of one message kind), by device and
    sequence number."""
    where, params = _where((("device_id", device_id), ("kind", kind)))
    rows = tx.fetchall(
        f"SELECT device_id, seq, kind, received_ms, envelope FROM events{where} "
        "ORDER BY device_id, seq",
        params,
    )
    return [LogRow(str(d), int(s), int(k), int(r), bytes(e)) for d, s, k, r, e in rows]


def event_numbers(tx: Transaction) -> list[tuple[str, int]]:
    """(device, seq) of every stored data event, by device and sequence number (no envelopes:
    cheap enough to poll)."""
    rows = tx.fetchall("SELECT device_id, seq FROM events ORDER BY device_id, seq")
    return [(str(d), int(s)) for d, s in rows]


def rejections(tx: Transaction, device_id: str | None = None) -> list[StoredRejection]:
    """The stored rejections (all, or those naming one device), in the order they were stored."""
    where, params = _where((("device_id", device_id),))
    rows = tx.fetchall(
        f"SELECT received_ms, topic, device_id, reason, detail FROM rejections{where} ORDER BY id",
        params,
    )
    return [
        StoredRejection(int(r), str(t), None if d is None else str(d), str(why), str(detail))
        for r, t, d, why, detail in rows
    ]


def _where(filters: tuple[tuple[str, object], ...]) -> tuple[str, tuple[object, ...]]:
    """` WHERE a = ? AND b = ?` of the filters that are set, and their values."""
    used = [(column, value) for column, value in filters if value is not None]
    if not used:
        return "", ()
    return " WHERE " + " AND ".join(f"{c} = ?" for c, _v in used), tuple(v for _c, v in used)

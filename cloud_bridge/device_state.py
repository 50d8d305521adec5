"""Per-device ingest state, read and locked once per batch: the replay windows (data and
session), the risk streak, the last boot counter and whether the device is online.

On PostgreSQL the rows are locked FOR UPDATE in device-id order, the same order in every bridge
process, so two bridges sharing a fleet serialise per device and never deadlock.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

from cloud_bridge.store.base import Transaction
from protocol.replay import ReplayWindow


@dataclass
class DeviceRow:
    device_id: str
    fleet: str
    user: str
    status: str
    data: ReplayWindow
    session: ReplayWindow
    streak: int
    last_boot: int
    online: int
    ack: bool = False  # publish an ack after the commit
    touched: bool = False  # write the row back


def lock_devices(tx: Transaction, ids: set[str]) -> dict[str, DeviceRow]:
    """The rows of these devices (locked on PostgreSQL); unknown ids are left out. One query
    per `CHUNK` devices: PostgreSQL locks the rows in the ORDER BY order (its LockRows step
    runs after the sort), the same device-id order in every bridge, so bridges never
    deadlock."""
    out: dict[str, DeviceRow] = {}
    lock = " FOR UPDATE" if tx.dialect == "postgres" else ""
    for chunk in _chunks(sorted(ids)):
        rows = tx.fetchall(
            "SELECT device_id, fleet, user_id, status, data_window, session_window, "
            f"risk_streak, last_boot, online FROM devices WHERE device_id IN ({_marks(chunk)}) "
            f"ORDER BY device_id{lock}",
            chunk,
        )
        for row in rows:
            out[str(row[0])] = DeviceRow(
                str(row[0]), str(row[1]), str(row[2]), str(row[3]),
                ReplayWindow.from_bytes(bytes(row[4])), ReplayWindow.from_bytes(bytes(row[5])),
                int(row[6]), int(row[7]), int(row[8]),
            )  # fmt: skip
    return out


def key_statuses(tx: Transaction, kids: set[bytes]) -> dict[bytes, str]:
    """active, retired, revoked or unknown, per kid, read in the batch's transaction (the
    registry cache may lag a revocation made by another process)."""
    out = dict.fromkeys(kids, "unknown")
    for chunk in _chunks(sorted(kids)):
        for kid, status in tx.fetchall(
            f"SELECT kid, status FROM device_keys WHERE kid IN ({_marks(chunk)})", chunk
        ):
            out[bytes(kid)] = str(status)
    return out


T = TypeVar("T")
CHUNK = 500
"""Ids per query: a batch's devices in one round trip, well under SQLite's parameter limit."""


def _chunks(values: list[T]) -> Iterator[list[T]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def _marks(values: list[str] | list[bytes]) -> str:
    return ", ".join("?" * len(values))


def save_devices(tx: Transaction, devices: dict[str, DeviceRow], now_ms: int) -> None:
    rows = [
        (d.data.to_bytes(), d.session.to_bytes(), d.streak, d.last_boot, d.online, now_ms,
         d.device_id)
        for d in devices.values()
        if d.touched
    ]  # fmt: skip
    if rows:
        tx.executemany(
            "UPDATE devices SET data_window = ?, session_window = ?, risk_streak = ?, "
            "last_boot = ?, online = ?, last_seen_ms = ? WHERE device_id = ?",
            rows,
        )

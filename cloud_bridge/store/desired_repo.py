"""The SQL of desired and reported configuration (table `device_config`, migration 009).

Every function runs inside the caller's transaction; the decisions are `cloud_bridge.desired`'s.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from types import MappingProxyType
from typing import Any

from cloud_bridge.desired import DeviceConfig, Value
from cloud_bridge.store.base import Transaction
from cloud_bridge.store.batching import chunks, marks

_COLS = "device_id, desired_version, desired, reported_version, sent_seq, sent_version"


def _row(row: tuple[Any, ...]) -> DeviceConfig:
    desired = json.loads(str(row[2]))
    return DeviceConfig(
        str(row[0]), int(row[1]), MappingProxyType(desired), int(row[3]), int(row[4]), int(row[5])
    )


def get(tx: Transaction, device_id: str, *, for_update: bool = False) -> DeviceConfig | None:
    row = tx.fetchone(
        f"SELECT {_COLS} FROM device_config WHERE device_id = ?",
        (device_id,),
        for_update=for_update,
    )
    return None if row is None else _row(row)


def of_devices(tx: Transaction, ids: Collection[str]) -> dict[str, DeviceConfig]:
    """The rows of these devices (one query per 250); devices without a row are left out."""
    ordered = sorted(ids)
    out: dict[str, DeviceConfig] = {}
    for chunk in chunks(ordered):
        for row in tx.fetchall(
            f"SELECT {_COLS} FROM device_config WHERE device_id IN ({marks(len(chunk))})", chunk
        ):
            config = _row(row)
            out[config.device_id] = config
    return out


def set_desired(
    tx: Transaction, device_id: str, desired: dict[str, Value], now_ms: int
) -> DeviceConfig:
    """Store `desired` as the device's next version; the new row."""
    current = get(tx, device_id, for_update=True)
    version = (current.desired_version if current else 0) + 1
    text = json.dumps(desired, sort_keys=True)
    tx.execute(
        "INSERT INTO device_config (device_id, desired_version, desired, updated_ms) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET "
        "desired_version = excluded.desired_version, desired = excluded.desired, "
        "updated_ms = excluded.updated_ms",
        (device_id, version, text, now_ms),
    )
    new = get(tx, device_id)
    assert new is not None
    return new


def save_reported(tx: Transaction, rows: Iterable[tuple[str, int]], now_ms: int) -> None:
    """(device, version it runs): create or update each device's reported version."""
    tx.executemany(
        "INSERT INTO device_config (device_id, reported_version, updated_ms) VALUES (?, ?, ?) "
        "ON CONFLICT (device_id) DO UPDATE SET reported_version = excluded.reported_version, "
        "updated_ms = excluded.updated_ms",
        [(device, version, now_ms) for device, version in rows],
    )


def save_sent(tx: Transaction, rows: Iterable[tuple[str, int, int]], now_ms: int) -> None:
    """(device, command seq, version it carries): the config command last sent to each."""
    tx.executemany(
        "UPDATE device_config SET sent_seq = ?, sent_version = ?, updated_ms = ? "
        "WHERE device_id = ?",
        [(seq, version, now_ms, device) for device, seq, version in rows],
    )


def drift(tx: Transaction) -> int:
    """Devices whose reported version lags their desired one."""
    return int(
        tx.scalar(
            "SELECT COUNT(*) FROM device_config "
            "WHERE desired_version > 0 AND reported_version < desired_version"
        )
        or 0
    )

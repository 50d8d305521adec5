"""The SQL of the device registry: devices and their keys, as values.

Every function runs inside the caller's transaction; the rules (who may enroll, rotate, revoke)
are `cloud_bridge.registry`'s.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import nacl.signing

from cloud_bridge.store.base import Transaction
from cloud_bridge.store.batching import CHUNK


@dataclass(frozen=True)
class DeviceKey:
    kid: bytes
    device_id: str
    public_key: bytes
    generation: int
    status: str  # active, retired, revoked

    @functools.cached_property
    def verify_key(self) -> nacl.signing.VerifyKey:
        """Built once per cached key, not once per message."""
        return nacl.signing.VerifyKey(self.public_key)


@dataclass(frozen=True)
class Device:
    device_id: str
    fleet: str
    user_id: str
    kind: str
    status: str
    baseline: dict[int, int]
    identity: dict[str, str]
    enrolled_ms: int
    key_generation: int

    def to_json(self) -> dict[str, object]:
        return {
            "device_id": self.device_id,
            "fleet": self.fleet,
            "user": self.user_id,
            "kind": self.kind,
            "status": self.status,
            "enrolled_ms": self.enrolled_ms,
            "key_generation": self.key_generation,
            "identity": self.identity,
        }


_DEVICE_COLS = (
    "device_id, fleet, user_id, kind, status, baseline, identity, enrolled_ms, key_generation"
)
_KEY_COLS = "kid, device_id, public_key, generation, status"


def _device(row: tuple[Any, ...]) -> Device:
    baseline = {int(k): int(v) for k, v in json.loads(str(row[5])).items()}
    return Device(
        str(row[0]),
        str(row[1]),
        str(row[2]),
        str(row[3]),
        str(row[4]),
        baseline,
        json.loads(str(row[6])),
        int(str(row[7])),
        int(str(row[8])),
    )


def _key(row: tuple[Any, ...]) -> DeviceKey:
    return DeviceKey(bytes(row[0]), str(row[1]), bytes(row[2]), int(row[3]), str(row[4]))


def insert_device(
    tx: Transaction, device: Device, data_window: bytes, session_window: bytes
) -> None:
    tx.execute(
        f"INSERT INTO devices ({_DEVICE_COLS}, data_window, session_window) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            device.device_id,
            device.fleet,
            device.user_id,
            device.kind,
            device.status,
            json.dumps({str(k): v for k, v in device.baseline.items()}),
            json.dumps(device.identity),
            device.enrolled_ms,
            device.key_generation,
            data_window,
            session_window,
        ),
    )


def insert_key(tx: Transaction, key: DeviceKey, added_ms: int) -> None:
    tx.execute(
        f"INSERT INTO device_keys ({_KEY_COLS}, added_ms) VALUES (?, ?, ?, ?, ?, ?)",
        (key.kid, key.device_id, key.public_key, key.generation, key.status, added_ms),
    )


def set_key_generation(tx: Transaction, device_id: str, generation: int) -> None:
    tx.execute("UPDATE devices SET key_generation = ? WHERE device_id = ?", (generation, device_id))


def retire_older_keys(tx: Transaction, device_id: str, generation: int) -> int:
    """Retire the device's active keys older than `generation`; how many changed."""
    return tx.execute(
        "UPDATE device_keys SET status = 'retired' "
        "WHERE device_id = ? AND generation < ? AND status = 'active'",
        (device_id, generation),
    )


def retire_keys_except(tx: Transaction, device_id: str, keep: tuple[bytes, bytes]) -> int:
    """Retire the device's active keys but the two in `keep`; how many changed."""
    return tx.execute(
        "UPDATE device_keys SET status = 'retired' "
        "WHERE device_id = ? AND status = 'active' AND kid NOT IN (?, ?)",
        (device_id, *keep),
    )


def revoke(tx: Transaction, device_id: str) -> int:
    """Revoke the device and all its keys; how many keys changed."""
    tx.execute("UPDATE devices SET status = 'revoked' WHERE device_id = ?", (device_id,))
    return tx.execute("UPDATE device_keys SET status = 'revoked' WHERE device_id = ?", (device_id,))


def device(tx: Transaction, device_id: str) -> Device | None:
    row = tx.fetchone(f"SELECT {_DEVICE_COLS} FROM devices WHERE device_id = ?", (device_id,))
    return _device(row) if row else None


def devices(tx: Transaction) -> list[Device]:
    return [
        _device(r) for r in tx.fetchall(f"SELECT {_DEVICE_COLS} FROM devices ORDER BY device_id")
    ]


def key(tx: Transaction, kid: bytes) -> DeviceKey | None:
    row = tx.fetchone(f"SELECT {_KEY_COLS} FROM device_keys WHERE kid = ?", (kid,))
    return _key(row) if row else None


def keys(tx: Transaction, kids: Collection[bytes]) -> list[DeviceKey]:
    """The enrolled keys among `kids`: one query per CHUNK."""
    ordered = sorted(kids)
    out: list[DeviceKey] = []
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start : start + CHUNK]
        rows = tx.fetchall(
            f"SELECT {_KEY_COLS} FROM device_keys WHERE kid IN ({', '.join('?' * len(chunk))})",
            chunk,
        )
        out.extend(_key(r) for r in rows)
    return out


def active_keys(tx: Transaction, limit: int) -> list[DeviceKey]:
    """Up to `limit` active keys, the most recently added first."""
    rows = tx.fetchall(
        f"SELECT {_KEY_COLS} FROM device_keys WHERE status = 'active' "
        "ORDER BY added_ms DESC LIMIT ?",
        (limit,),
    )
    return [_key(r) for r in rows]


def keys_of(tx: Transaction, device_id: str) -> list[DeviceKey]:
    rows = tx.fetchall(
        f"SELECT {_KEY_COLS} FROM device_keys WHERE device_id = ? ORDER BY generation",
        (device_id,),
    )
    return [_key(r) for r in rows]


def all_keys(tx: Transaction) -> list[DeviceKey]:
    """Every enrolled key, whatever its status, by device and generation."""
    rows = tx.fetchall(f"SELECT {_KEY_COLS} FROM device_keys ORDER BY device_id, generation")
    return [_key(r) for r in rows]

"""The SQL of broker accounts: MQTT usernames, roles and password hashes, as values.

Every function runs inside the caller's transaction; what the accounts become (password file,
ACL file) is `cloud_bridge.broker_config`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cloud_bridge.store.base import Transaction

DEVICE, BRIDGE, OBSERVER, CLAIM = "device", "bridge", "observer", "claim"
ROLES = (DEVICE, BRIDGE, OBSERVER, CLAIM)
"""Claim accounts are not rows of broker_accounts: they come from the claim tokens
(store.claims_repo.accounts) while a token is valid."""


@dataclass(frozen=True)
class BrokerAccount:
    """One MQTT account. `device_status` is the enrolled device's status for a device account
    (None when no such device is enrolled), None for the other roles."""

    username: str
    role: str
    password_hash: str
    device_status: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {self.role!r}")


def _account(row: tuple[Any, ...]) -> BrokerAccount:
    status = None if row[3] is None else str(row[3])
    return BrokerAccount(str(row[0]), str(row[1]), str(row[2]), status)


_SELECT = (
    "SELECT a.username, a.role, a.password_hash, d.status FROM broker_accounts a "
    "LEFT JOIN devices d ON a.role = 'device' AND d.device_id = a.username"
)


def put(tx: Transaction, username: str, role: str, password_hash: str, now_ms: int) -> None:
    """Create the account or replace its role and hash."""
    tx.execute(
        "INSERT INTO broker_accounts (username, role, password_hash, updated_ms) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (username) DO UPDATE SET "
        "role = excluded.role, password_hash = excluded.password_hash, "
        "updated_ms = excluded.updated_ms",
        (username, role, password_hash, now_ms),
    )


def delete(tx: Transaction, username: str) -> int:
    """Remove the account; how many rows went (0 or 1)."""
    return tx.execute("DELETE FROM broker_accounts WHERE username = ?", (username,))


def account(tx: Transaction, username: str) -> BrokerAccount | None:
    row = tx.fetchone(f"{_SELECT} WHERE a.username = ?", (username,))
    return _account(row) if row else None


def accounts(tx: Transaction) -> list[BrokerAccount]:
    """Every account, by username."""
    return [_account(r) for r in tx.fetchall(f"{_SELECT} ORDER BY a.username")]

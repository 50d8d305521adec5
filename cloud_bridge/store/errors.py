"""Exceptions of the store adapters. Foreign database errors are wrapped at this boundary."""

from __future__ import annotations

from cloud_bridge.errors import BridgeError


class StoreError(BridgeError):
    """The database cannot be opened, migrated or used; the message says what to do."""


class StoreConflict(StoreError):
    """A transient conflict (deadlock, serialization failure, database busy): retry the whole
    transaction. `PoolService` does so itself for transactions it owns."""

"""Which devices a staged rollout reaches: a stable subset by a hash of the device id.

A device's bucket (0 to 9999) is the first 8 bytes of SHA-256 of its id, modulo 10000; a rollout
to P percent reaches the buckets below P * 100. Raising P only adds devices, so the canaries of
10 % are still in at 50 %, and the same devices are the canaries of every release."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

BUCKETS = 10_000


def bucket(device_id: str) -> int:
    return int.from_bytes(hashlib.sha256(device_id.encode()).digest()[:8], "big") % BUCKETS


def chosen(device_ids: Iterable[str], percent: float) -> list[str]:
    """The devices a rollout to `percent` (0 to 100) reaches, sorted."""
    if not 0 <= percent <= 100:
        raise ValueError(f"percent {percent} must be from 0 to 100")
    limit = round(percent * BUCKETS / 100)
    return sorted(d for d in device_ids if bucket(d) < limit)

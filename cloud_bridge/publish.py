"""Bridge output: every message signed with the bridge key and numbered per bridge instance.

Sequence numbers come from `bridge_counters`, reserved a block at a time so that numbering costs
one small write per block, and never repeats across restarts (a restart starts a new block).
The boot counter of the instance lives in the same table.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import nacl.signing

from cloud_bridge.store.base import Store, Transaction
from cloud_bridge.store.ingest_repo import bump_counter
from protocol import cose
from protocol import messages as m

BLOCK = 1000
M = TypeVar("M", bound=m.Message)


class Publisher:
    def __init__(
        self,
        instance: str,
        key: nacl.signing.SigningKey,
        store: Store,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        block: int = BLOCK,
    ) -> None:
        self.instance = instance
        self.block = block
        self.key = key
        self.signer = cose.Signer(key)  # kid, headers and libsodium key prepared once
        self.kid = self.signer.kid
        self.store = store
        self.wall_ms = wall_ms
        with store.transaction() as tx:
            self.boot = bump_counter(tx, f"{instance}:boot", 1)
        self._next = 0
        self._end = 0

    def next_seq(self, tx: Transaction | None = None) -> int:
        if self._next >= self._end:
            if tx is None:
                with self.store.transaction() as own:
                    start = bump_counter(own, self.instance, self.block)
            else:
                start = bump_counter(tx, self.instance, self.block)
            self._next, self._end = start, start + self.block
        seq = self._next
        self._next += 1
        return seq

    def invalidate(self) -> None:
        """Forget the block in hand: call after a transaction that may have reserved it rolled
        back, so the database's counter and ours cannot hand out the same numbers twice."""
        self._next = self._end = 0

    def make(self, cls: type[M], tx: Transaction | None = None, **fields: Any) -> M:
        return cls(
            sender=self.instance,
            seq=self.next_seq(tx),
            boot=self.boot,
            ts_ms=self.wall_ms(),
            **fields,
        )

    def seal(self, message: m.Message) -> bytes:
        # What envelope.seal does, with the kid and headers prepared once.
        return self.signer.sign1(m.encode(message))

    def sealed(self, cls: type[M], tx: Transaction | None = None, **fields: Any) -> bytes:
        return self.seal(self.make(cls, tx, **fields))


def operator_publisher(instance: str, key: nacl.signing.SigningKey, store: Store) -> Publisher:
    """The publisher of operator commands (`cloud-bridge pool/devices/scheduler ...`): sender
    `<bridge id>-cli`, shared by every such process, numbered one at a time from the shared
    counter. Each number is taken in the transaction that stores its output, which holds the
    counter's row until it commits: numbers follow commit order, and the bridge publishes the
    stored rows in that order, so a receiver's replay window (protocol.replay) never sees one
    process's lower number after another's higher one (blocks per process did: review 6)."""
    from cloud_bridge.broker_cli import CLI_SUFFIX

    return Publisher(f"{instance}{CLI_SUFFIX}", key, store, block=1)

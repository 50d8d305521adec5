"""The running bridge's watch over its own retained topics: the I/O around `cloud_bridge.guard`.

The bridge subscribes to its state topic and to the fleet's pool state topics. What arrives
there is checked on the network thread without touching the database: a payload is verified
against the bridge key (`verified`); the bridge state goes to `guard.must_reannounce`; a pool
state that is not the bridge's own publish coming back (`guard.Echoes`) is noted with the
version it shows. The worker then takes the noted pools a bounded number at a time and
publishes the current state of each one the retained topic shows older, empty or foreign
(`restore`, `guard.must_republish_pool`).
"""

from __future__ import annotations

import itertools
import logging
import threading

import nacl.signing

from cloud_bridge import guard
from cloud_bridge.metrics import Metrics
from cloud_bridge.outputs import TOPIC_CACHE, Output, Outputs, Pending
from cloud_bridge.pool.service import PoolService
from cloud_bridge.publish import Publisher
from cloud_bridge.store import StoreConflict
from cloud_bridge.store.base import Store
from protocol import cose, envelope, topics
from protocol import messages as m
from protocol.errors import ProtocolError

log = logging.getLogger(__name__)
POOL_CHECKS_PER_STEP = 500
"""Pools whose retained state is checked against the database in one worker step."""
POOL_CHECKS_MAX = 100_000
"""Pools waiting for that check; beyond it, what arrives is dropped (and counted)."""


class RetainedWatch:
    """What the bridge saw on its retained topics, between the network thread that notes it
    and the worker that answers it. Thread-safe."""

    def __init__(
        self, fleet: str, instance: str, key: nacl.signing.SigningKey, metrics: Metrics
    ) -> None:
        self.fleet = fleet
        self.instance = instance
        self.metrics = metrics
        self.state_topic = topics.bridge_state(fleet)
        self._me = key.verify_key
        self._kid = cose.kid_for(key.verify_key)
        self._pool_prefix = f"{topics.PREFIX}/{fleet}/pool/"
        self._lock = threading.Lock()
        self._echoes = guard.Echoes(TOPIC_CACHE)  # under _lock
        self._pool_seen: dict[str, int | None] = {}  # user -> version seen; under _lock

    def verified(self, payload: bytes) -> m.Message | None:
        """The message, if the payload is one signed with the bridge key; else None."""
        try:
            _s, message = envelope.unseal(
                payload, lambda kid: self._me if kid == self._kid else None
            )
        except ProtocolError:
            return None
        return message

    def must_reannounce(self, payload: bytes, session: guard.StatePair | None) -> bool:
        """Whether this payload on the bridge state topic must not stand while the session
        runs (guard.must_reannounce: an offline, empty, foreign or earlier state); counted."""
        seen = self.verified(payload)
        state = seen if isinstance(seen, m.BridgeState) else None
        if session is None or not guard.must_reannounce(state, self.instance, session):
            return False
        self.metrics.restored.labels(topic="bridge_state").inc()
        return True

    def is_pool_state(self, topic: str) -> bool:
        """cp/v1/{fleet}/pool/{user}/state (what topics.pool_state_filter matches); a device
        channel under the reserved id `pool` (five levels) goes to ingest, to be refused."""
        return (
            topic.startswith(self._pool_prefix)
            and topic.endswith("/state")
            and topic.count("/") == 5
        )

    def sent(self, topic: str, payload: bytes) -> None:
        """Call before publishing a retained pool state: its echo can come back at once."""
        with self._lock:
            self._echoes.sent(topic, payload)

    def on_pool_state(self, topic: str, payload: bytes) -> None:
        """Note what a pool's retained topic holds, unless it is our own publish coming back;
        the worker compares it with the database (network thread: no database here)."""
        with self._lock:
            if self._echoes.is_echo(topic, payload):
                return
        try:
            where = topics.parse(topic)
        except ProtocolError:
            return
        if where.channel is not topics.Channel.POOL_STATE or where.user is None:
            return
        seen = self.verified(payload)
        version = (
            seen.version if isinstance(seen, m.PoolState) and seen.user == where.user else None
        )
        with self._lock:
            if len(self._pool_seen) < POOL_CHECKS_MAX or where.user in self._pool_seen:
                self._pool_seen[where.user] = version
                return
        self.metrics.unchecked.inc()

    @property
    def pending(self) -> bool:
        """Pools wait for the worker's check."""
        return bool(self._pool_seen)

    def restore(
        self, store: Store, service: PoolService, outputs: Outputs, publisher: Publisher
    ) -> list[Output]:
        """The current state of each noted pool whose retained topic showed an older, empty or
        foreign one (guard.must_republish_pool), stored and sealed, for the worker to publish;
        a bounded number per call."""
        with self._lock:
            users = list(itertools.islice(self._pool_seen, POOL_CHECKS_PER_STEP))
            seen = {user: self._pool_seen.pop(user) for user in users}
        try:
            with store.transaction() as tx:
                pending: list[Pending] = []
                for user, version in seen.items():
                    view = service.get(user, tx=tx)
                    current = view.version if view is not None else None
                    if view is not None and guard.must_republish_pool(version, current):
                        pending.append(outputs.pool_view(tx, self.fleet, view))
                sealed = outputs.seal_and_store(tx, pending)
        except StoreConflict:  # deadlock, serialisation failure, busy: at the next step
            publisher.invalidate()  # its block may have been reserved in this rollback
            with self._lock:
                for user, version in seen.items():
                    self._pool_seen.setdefault(user, version)
            return []
        except Exception:  # never retried: what an outsider sent must not loop the worker
            publisher.invalidate()
            log.exception("bridge: checking %d retained pool states failed", len(seen))
            return []
        if sealed:
            log.info("bridge: %d pool states restored over older or foreign ones", len(sealed))
            self.metrics.restored.labels(topic="pool_state").inc(len(sealed))
        return sealed

"""Verification of a batch, before its transaction: topic, key, signature, decoding.

It is the expensive part of ingest and needs no lock, so it runs before the batch's
transaction opens. Keys come from the registry's cache; the kids a batch names that are not
cached yet are read in one query, and only their messages are unsealed a second time.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from cloud_bridge.ingest_types import Inbound, Refused
from cloud_bridge.judge import CHANNEL_KIND, Rejection, Signed
from cloud_bridge.outputs import TOPIC_CACHE
from cloud_bridge.registry import Registry, refuse
from cloud_bridge.store.base import Store
from mqttc.throttle import Throttle
from protocol import cose, envelope, topics
from protocol.errors import ProtocolError, Reason

log = logging.getLogger(__name__)
# Parsed topics remembered: a device sends on a few, and parsing validates every part.
parse_topic = functools.lru_cache(maxsize=TOPIC_CACHE)(topics.parse)


@dataclass(frozen=True, slots=True)
class Verified:
    item: Inbound
    signed: Signed


class _Miss(Exception):
    """A kid that is not in the registry cache yet."""


class Verifier:
    """Verifies the batches of one fleet against the registry's keys."""

    def __init__(self, fleet: str, store: Store, registry: Registry, warnings: Throttle) -> None:
        self.fleet = fleet
        self.store = store
        self.registry = registry
        self._warnings = warnings

    def verify(self, batch: Sequence[Inbound]) -> tuple[list[Verified], list[Refused]]:
        refused: list[Refused] = []
        parsed: list[tuple[Inbound, topics.Topic]] = []
        for item in batch:
            try:
                topic = self._topic(item.topic)
            except ProtocolError as exc:
                refused.append(Refused(item, Rejection.of(exc)))
                continue
            if item.oversize:
                detail = f"{item.oversize} bytes, limit {cose.MAX_ENVELOPE_BYTES}"
                refused.append(
                    Refused(item, Rejection(Reason.OVERSIZE, detail, device=topic.device))
                )
                continue
            parsed.append((item, topic))
        out: list[Verified] = []
        missed: list[tuple[Inbound, topics.Topic]] = []
        kids: set[bytes] = set()

        def cached(kid: bytes) -> object:
            key = self.registry.cached(kid)
            if key is None:
                kids.add(kid)
                raise _Miss
            return refuse(key, kid)

        for item, topic in parsed:
            try:
                out.append(self._unseal(item, topic, cached))  # type: ignore[arg-type]
            except _Miss:
                missed.append((item, topic))
            except ProtocolError as exc:
                refused.append(Refused(item, Rejection.of(exc, topic.device)))
        if missed:
            with self.store.transaction() as tx:
                self.registry.load(tx, kids)  # one query for the batch's new kids

            def resolve(kid: bytes) -> object:
                return refuse(self.registry.cached(kid), kid)

            for item, topic in missed:
                try:
                    out.append(self._unseal(item, topic, resolve))  # type: ignore[arg-type]
                except ProtocolError as exc:
                    refused.append(Refused(item, Rejection.of(exc, topic.device)))
        return out, refused

    def _topic(self, name: str) -> topics.Topic:
        topic = parse_topic(name)  # a Topic is a frozen value: one may be shared
        if topic.channel not in CHANNEL_KIND:
            raise ProtocolError(Reason.BAD_TOPIC, f"{topic.channel} is not a device channel")
        if topic.fleet != self.fleet:
            raise ProtocolError(Reason.BAD_TOPIC, f"fleet {topic.fleet} is not served here")
        return topic

    def _unseal(self, item: Inbound, topic: topics.Topic, resolve: cose.Resolver) -> Verified:
        try:
            signed, message = envelope.unseal(item.payload, resolve)
        except (_Miss, ProtocolError):
            raise
        except Exception as exc:  # a decoder bug must cost one message, not the batch
            self._warnings.warn(
                log, "decoder_error", _mono_ms(), "unexpected error decoding %s", item.topic,
                level=logging.ERROR, exc_info=True,
            )  # fmt: skip
            raise ProtocolError(Reason.BAD_FIELD, f"undecodable: {type(exc).__name__}") from exc
        key = self.registry.cached(signed.kid)
        assert key is not None
        return Verified(
            item,
            Signed(item.topic, topic, key, message, signed.payload, item.payload, item.received_ms),
        )


def _mono_ms() -> int:
    return time.monotonic_ns() // 1_000_000

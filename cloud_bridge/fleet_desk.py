"""The running bridge's fleet operations beside ingest: answering claims, counting drift.

Claims (issue 18 item 7, decisions in cloud_bridge.claims): the network thread only queues what
arrives on `cp/v1/{fleet}/+/claim` (bounded: beyond CLAIM_QUEUE_MAX a claim is dropped and
counted; the device retries). The worker verifies each claim, decides it and, in one transaction
per claim, enrolls the device, creates its broker account with a new secret, stores the sealed
answer with the token; then rewrites the broker's files once for the step (so the account exists
before the device learns it) and returns the answers to publish. A lost answer costs nothing: the
device retries and gets the stored answer again. A retry answered "again" rewrites the files too
(a no-op when they are current): a bridge killed between a claim's commit and the rewrite leaves
the device's account off the broker until then. Claim accounts expire, and a used token's goes
claims.CLAIM_RETRY_MS after its use: the files are rewritten every CLAIM_SYNC_S as well, so such
an account leaves the broker within that time without waiting for another claim.

Drift (issue 18 item 4): every DRIFT_POLL_S the worker counts the devices whose reported
configuration version lags the desired one (`cp_bridge_config_drift`).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable

import nacl.signing

from cloud_bridge import claims
from cloud_bridge.config import BridgeConfig
from cloud_bridge.metrics import Metrics
from cloud_bridge.publish import Publisher
from cloud_bridge.registry import Registry, RegistryError, read_record
from cloud_bridge.store import StoreConflict, broker_repo, claims_repo, desired_repo
from cloud_bridge.store.base import Store, Transaction
from protocol import claims as pc
from protocol import messages as m
from protocol import mqtt_password, topics
from protocol.errors import ProtocolError
from protocol.topics import Channel

log = logging.getLogger(__name__)
CLAIM_QUEUE_MAX = 10_000
DRIFT_POLL_S = 5.0
"""How often the worker counts the devices whose configuration lags (cp_bridge_config_drift)."""
CLAIM_SYNC_S = 60.0
"""How often the worker rewrites the broker's files anyway (expired claim accounts leave)."""


class FleetDesk:
    def __init__(
        self,
        cfg: BridgeConfig,
        key: nacl.signing.SigningKey,
        store: Store,
        registry: Registry,
        publisher: Publisher,
        metrics: Metrics,
        sync: Callable[[], object],
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg, self.store, self.registry, self.publisher = cfg, store, registry, publisher
        self.metrics, self.sync, self.wall_ms = metrics, sync, wall_ms
        self.bridge_key = key.verify_key
        self.monotonic = monotonic
        self._claims: collections.deque[tuple[str, bytes]] = collections.deque()
        self._lock = threading.Lock()
        self._drift_due = 0.0
        self._sync_due = monotonic() + CLAIM_SYNC_S

    def claim_filter(self, share_group: str | None) -> str:
        base = topics.claim_filter(self.cfg.fleet)
        return f"$share/{share_group}/{base}" if share_group else base

    def wants(self, topic: str) -> bool:
        return topic.endswith("/" + Channel.CLAIM.value)

    def received(self, topic: str, payload: bytes) -> None:
        """Network thread: queue a claim (no database here)."""
        with self._lock:
            if len(self._claims) < CLAIM_QUEUE_MAX:
                self._claims.append((topic, payload))
                return
        self.metrics.claims.labels(result="dropped").inc()

    def step(self) -> list[tuple[str, bytes]]:
        """Worker: the drift count when due; every queued claim decided; the answers."""
        if time.monotonic() >= self._drift_due:
            self._drift_due = time.monotonic() + DRIFT_POLL_S
            with self.store.transaction() as tx:
                self.metrics.config_drift.set(desired_repo.drift(tx))
        with self._lock:
            queued, self._claims = list(self._claims), collections.deque()
        answers, enrolled, again = [], 0, 0
        for topic, payload in queued:
            try:
                where = topics.parse(topic)
            except ProtocolError:
                continue
            if where.channel is not Channel.CLAIM or where.device is None:
                continue
            try:
                with self.store.transaction() as tx:
                    answer, result = self._decide(tx, where.device, payload)
            except StoreConflict:  # busy: the device retries
                self.publisher.invalidate()
                continue
            except Exception:  # one bad claim must not stop the worker
                self.publisher.invalidate()
                log.exception("bridge: claim on %s failed", topic)
                continue
            enrolled += result == "enrolled"
            again += result == "again"
            self.metrics.claims.labels(result=result).inc()
            answers.append(
                (topics.claim(self.cfg.fleet, where.device, Channel.CLAIM_ANSWER), answer)
            )
        if enrolled or again or self.monotonic() >= self._sync_due:
            # The new device accounts reach the broker before their credentials; a retry's
            # account too, should a crash have come between its commit and the rewrite.
            self._sync_due = self.monotonic() + CLAIM_SYNC_S
            try:
                self.sync()
            except Exception:  # the worker goes on; the devices retry and get their answers
                log.exception("bridge: rewriting the broker's files failed; answers withheld")
                self.metrics.claims.labels(result="sync_failed").inc(len(answers))
                return []
        if enrolled:
            log.info("bridge: %d devices enrolled by claim", enrolled)
        return answers

    def _decide(self, tx: Transaction, account: str, payload: bytes) -> tuple[bytes, str]:
        """The signed answer to one claim and its result (enrolled, again, or a reason)."""
        now = self.wall_ms()
        try:
            record, kid = read_record(payload)
            token = pc.open_token(record.claim, self.bridge_key)
        except (RegistryError, ProtocolError):
            return self._refusal(tx, account, claims.ClaimReason.INVALID), "claim_invalid"
        row = claims_repo.token(tx, token.token)
        verdict = claims.judge(row, token, account, kid, record.sender, now)
        if isinstance(verdict, claims.AnswerAgain):
            return verdict.answer, "again"
        if isinstance(verdict, claims.Refuse):
            return self._refusal(tx, record.sender, verdict.reason), verdict.reason.value
        try:
            self.registry.enroll(tx, payload, verdict.user, now, fleet=self.cfg.fleet)
        except RegistryError:
            return self._refusal(tx, record.sender, claims.ClaimReason.DEVICE_TAKEN), "taken"
        secret = mqtt_password.new_secret()
        broker_repo.put(
            tx, record.sender, broker_repo.DEVICE, mqtt_password.hash_password(secret), now
        )
        creds = pc.Credentials(username=record.sender, password=secret)
        answer = self.publisher.sealed(
            m.ClaimAnswer,
            tx,
            device=record.sender,
            result="enrolled",
            sealed=pc.seal_credentials(creds, record.public_key),
        )
        claims_repo.mark_used(tx, token.token, kid, record.sender, answer, now)
        return answer, "enrolled"

    def _refusal(self, tx: Transaction, device: str, reason: claims.ClaimReason) -> bytes:
        return self.publisher.sealed(
            m.ClaimAnswer, tx, device=device, result="refused", reason=reason.value
        )

"""Ingest: a batch of raw MQTT messages in, one database transaction, signed outputs out.

    topic -> verify (registry key) -> sender/kind/topic checks -> replay window -> event log
          -> risk verdict -> pool commands -> decisions, pool state, risk notes (outputs table)
    commit -> acks (the window's contiguous edge) and the stored outputs, to be published

Verification happens before the transaction (it is the expensive part and needs no lock). One
transaction covers the events, the replay windows, the pool commands and the outputs of the
whole batch, so a crash anywhere either keeps all of it or none of it; the device then resends
what was not acked. Every refusal has a reason code, is counted, is recorded in `rejections` and
is published on the device's risk topic; none writes to the ledger.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cloud_bridge import actions
from cloud_bridge.config import BridgeConfig
from cloud_bridge.device_state import DeviceRow, key_statuses, lock_devices, save_devices
from cloud_bridge.outputs import Output, Outputs, Pending, forget_outputs
from cloud_bridge.pool.commands import Command
from cloud_bridge.pool.service import Outcome, PoolService
from cloud_bridge.publish import Publisher
from cloud_bridge.registry import DeviceKey, Registry, RegistryError, refuse
from cloud_bridge.risk.verdict import FREEZE, Thresholds, judge
from cloud_bridge.store.base import Store, Transaction
from protocol import cose, envelope, topics
from protocol import messages as m
from protocol.errors import ProtocolError, Reason
from protocol.topics import Channel

log = logging.getLogger(__name__)
CONFLICT = "seq_conflict"

CHANNEL_KIND = {
    Channel.REPORT: m.Report,
    Channel.TRIGGER: m.Trigger,
    Channel.BIRTH: m.Birth,
    Channel.DEATH: m.Death,
    Channel.ENROLL: m.Enrollment,
}


@dataclass(frozen=True)
class Inbound:
    topic: str
    payload: bytes
    received_ms: int
    received_ns: int = 0  # monotonic, for the latency histogram


@dataclass
class BatchResult:
    outputs: list[Output] = field(default_factory=list)
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    decided_ns: list[int] = field(default_factory=list)  # received_ns of events with decisions
    db_seconds: float = 0.0


@dataclass
class _Verified:
    item: Inbound
    topic: topics.Topic
    key: DeviceKey
    message: m.Message
    payload: bytes


class RejectionLimit:
    """At most RATE stored and published refusals per device id (as the topic names it, so
    possibly forged) per minute; the metrics count every one. The table is cleared each
    minute, so attacker-chosen ids cannot grow it without bound."""

    RATE = 60

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.minute = 0.0
        self.counts: dict[str | None, int] = {}

    def allow(self, device: str | None) -> bool:
        now = self.clock()
        if now - self.minute >= 60:
            self.minute, self.counts = now, {}
        self.counts[device] = self.counts.get(device, 0) + 1
        return self.counts[device] <= self.RATE

    def noted(self, device: str | None) -> bool:
        """Whether the last refusal of `device` was within the rate (call after allow)."""
        return self.counts.get(device, 0) <= self.RATE


class _Miss(Exception):
    """A kid that is not in the registry cache yet."""


class Ingest:
    def __init__(
        self,
        store: Store,
        registry: Registry,
        publisher: Publisher,
        service: PoolService,
        cfg: BridgeConfig,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.store = store
        self.registry = registry
        self.publisher = publisher
        self.service = service
        self.cfg = cfg
        self.wall_ms = wall_ms
        self.thresholds = Thresholds(cfg.step_up_pm, cfg.hold_pm, cfg.freeze_pm, cfg.freeze_after)
        self._act = True
        self._retired: set[tuple[str, int]] = set()
        self._limit = RejectionLimit()
        self.out = Outputs(publisher, wall_ms)

    # ---- verification (no transaction) --------------------------------------------------------

    def _verify(
        self,
        batch: list[Inbound],
        result: BatchResult,
        rejections: list[tuple[Inbound, str | None, Reason, str]],
    ) -> list[_Verified]:
        parsed: list[tuple[Inbound, topics.Topic]] = []
        for item in batch:
            try:
                topic = topics.parse(item.topic)
                if topic.channel not in CHANNEL_KIND:
                    raise ProtocolError(
                        Reason.BAD_TOPIC, f"{topic.channel} is not a device channel"
                    )
                if topic.fleet != self.cfg.fleet:
                    raise ProtocolError(Reason.BAD_TOPIC, f"fleet {topic.fleet} is not served here")
                parsed.append((item, topic))
            except ProtocolError as exc:
                rejections.append((item, None, exc.reason, exc.detail))
        out: list[_Verified] = []
        missed: list[tuple[Inbound, topics.Topic]] = []
        kids: set[bytes] = set()

        def cached(kid: bytes) -> object:
            key = self.registry.cached(kid)
            if key is None:
                kids.add(kid)
                raise _Miss
            return refuse(key, kid)

        def attempt(job: tuple[Inbound, topics.Topic]) -> _Verified | Exception:
            try:
                return self._unseal(job[0], job[1], cached)  # type: ignore[arg-type]
            except (_Miss, ProtocolError) as exc:
                return exc
            except Exception as exc:  # a decoder bug must cost one message, not the batch
                log.exception("unexpected error decoding %s", job[0].topic)
                return ProtocolError(Reason.BAD_FIELD, f"undecodable: {type(exc).__name__}")

        for (item, topic), res in zip(parsed, map(attempt, parsed), strict=True):
            if isinstance(res, _Verified):
                out.append(res)
            elif isinstance(res, _Miss):
                missed.append((item, topic))
            elif isinstance(res, ProtocolError):
                rejections.append((item, topic.device, res.reason, res.detail))
        if missed:
            with self.store.transaction() as tx:
                for kid in kids:
                    key = self.registry.key(tx, kid)
                    if key is not None:
                        self.registry.remember(key)
            for item, topic in missed:
                try:
                    out.append(
                        self._unseal(item, topic, lambda k: refuse(self.registry.cached(k), k))
                    )
                except ProtocolError as exc:
                    rejections.append((item, topic.device, exc.reason, exc.detail))
        return out

    def _unseal(self, item: Inbound, topic: topics.Topic, resolve: cose.Resolver) -> _Verified:
        signed, message = envelope.unseal(item.payload, resolve)
        key = self.registry.cached(signed.kid)
        assert key is not None
        return _Verified(item, topic, key, message, signed.payload)

    # ---- the batch ----------------------------------------------------------------------------

    def process(
        self, batch: list[Inbound], act: bool = True, forget: Sequence[tuple[str, int]] = ()
    ) -> BatchResult:
        """Run a batch in one transaction. With `act=False` (the fallback after an unexpected
        error) events are still stored and acked, but no pool command runs: their decisions say
        `internal_error`, so nothing is lost and the device is not stuck resending. `forget`:
        (instance, seq) of stored outputs the broker has, deleted in the same transaction."""
        result = BatchResult()
        rejections: list[tuple[Inbound, str | None, Reason, str]] = []
        verified = self._verify(batch, result, rejections)
        started = time.perf_counter()
        self._act = act
        try:
            with self.store.transaction() as tx:
                forget_outputs(tx, forget)
                outputs = self._apply(tx, verified, rejections, result)
        except BaseException:
            self.publisher.invalidate()  # its block may have been reserved in this rollback
            raise
        result.db_seconds = time.perf_counter() - started
        result.outputs = outputs + result.outputs
        return result

    def _apply(
        self,
        tx: Transaction,
        verified: list[_Verified],
        rejections: list[tuple[Inbound, str | None, Reason, str]],
        result: BatchResult,
    ) -> list[Output]:
        devices = lock_devices(tx, {v.key.device_id for v in verified})
        statuses = key_statuses(tx, {v.key.kid for v in verified})
        stored: list[Pending] = []
        commands: list[Command] = []
        pending: list[tuple[_Verified, DeviceRow, actions.Plan]] = []
        for v in verified:
            dev = devices.get(v.key.device_id)
            try:
                self._check(v, dev, statuses)
            except ProtocolError as exc:
                rejections.append((v.item, v.topic.device, exc.reason, exc.detail))
                continue
            assert dev is not None
            msg = v.message
            if isinstance(msg, m.Report | m.Trigger):
                outcome = self._data(tx, v, dev, msg, stored)
                if isinstance(outcome, Reason):
                    rejections.append((v.item, dev.device_id, outcome, f"sequence {msg.seq}"))
                    continue
                plan, conflict = outcome
                if conflict:  # refused, kept as evidence, and acted on: the pool freezes
                    rejections.append(
                        (
                            v.item,
                            dev.device_id,
                            Reason.REPLAY,
                            f"{CONFLICT}: sequence {msg.seq} with other content",
                        )
                    )
                else:
                    result.accepted += 1
                pending.append((v, dev, plan))
                commands.extend(plan.commands)
            else:
                reason = self._session(tx, v, dev, msg, stored)
                if reason is not None:
                    rejections.append((v.item, dev.device_id, reason, f"sequence {msg.seq}"))
                else:
                    result.accepted += 1
        outcomes = {o.key: o for o in self._run_pool(tx, commands)} if self._act else {}
        states: dict[str, tuple[str, Outcome]] = {}
        for v, dev, plan in pending:
            stored.append(self._decision(tx, v, dev, plan, outcomes))
            result.decided_ns.append(v.item.received_ns)
            for cmd in plan.commands:
                o = outcomes.get(cmd.key)
                if o is not None and o.view is not None:
                    prev = states.get(o.user)
                    if prev is None or (prev[1].view and o.view.version >= prev[1].view.version):
                        states[o.user] = (dev.fleet, o)
        for fleet, o in states.values():
            stored.append(self.out.pool_state(tx, fleet, o))
        for item, device, reason, detail in rejections:
            result.rejected[reason.value] += 1
            stored.extend(self._reject(tx, item, device, reason, detail))
        save_devices(tx, devices, self.wall_ms())
        acks = [
            self.out.ack(tx, d.fleet, d.device_id, d.data.contiguous)
            for d in devices.values()
            if d.ack
        ]
        return self.out.seal_and_store(tx, stored + acks)

    def _decision(
        self,
        tx: Transaction,
        v: _Verified,
        dev: DeviceRow,
        plan: actions.Plan,
        outcomes: dict[str, Outcome],
    ) -> Pending:
        msg = v.message
        assert isinstance(msg, m.Report | m.Trigger)
        ran = [outcomes[c.key] for c in plan.commands if c.key in outcomes]
        main = next((o for o in ran if not o.key.endswith(":freeze")), None) or (
            ran[0] if ran else None
        )
        if not self._act and plan.commands:
            result = "internal_error"
        else:
            result = main.result.value if main else "ok"
        return self.out.decision(
            tx,
            dev.fleet,
            dev.user,
            dev.device_id,
            msg,
            plan.verdict.decision,
            plan.action,
            result,
            plan.amount_fen,
            plan.verdict.reasons,
            v.item.received_ms,
        )

    def _check(self, v: _Verified, dev: DeviceRow | None, statuses: dict[bytes, str]) -> None:
        msg, topic = v.message, v.topic
        if statuses.get(v.key.kid) != "active" or dev is None or dev.status != "active":
            self.registry.forget(v.key.device_id)
            raise ProtocolError(Reason.REVOKED_KEY, f"key {v.key.kid.hex()} is not active")
        if msg.sender != v.key.device_id:
            raise ProtocolError(
                Reason.SENDER_MISMATCH, f"signed sender {msg.sender} is not {v.key.device_id}"
            )
        if topic.device != msg.sender or topic.fleet != dev.fleet:
            raise ProtocolError(Reason.TOPIC_MISMATCH, f"{v.item.topic} is not {msg.sender}'s")
        if not isinstance(msg, CHANNEL_KIND[topic.channel]):
            raise ProtocolError(
                Reason.TOPIC_MISMATCH, f"{type(msg).__name__} on the {topic.channel} channel"
            )

    def _data(
        self,
        tx: Transaction,
        v: _Verified,
        dev: DeviceRow,
        msg: m.Report | m.Trigger,
        stored: list[Pending],
    ) -> tuple[actions.Plan, bool] | Reason:
        """(plan, conflict) for a new event, or for a number reused with other content (a
        copied key); the reason for a plain duplicate or a stale number."""
        dev.ack = dev.touched = True
        verdict_reason = dev.data.verdict(msg.seq)
        if verdict_reason is Reason.REPLAY:
            old = tx.scalar(
                "SELECT envelope FROM events WHERE device_id = ? AND seq = ?",
                (dev.device_id, msg.seq),
            )
            if old is not None and cose.peek_payload(bytes(old)) != v.payload:
                # The same number with other content: two boards share this key.
                return self._verdict_plan(dev, msg, frozenset({CONFLICT}), stored, tx), True
            return Reason.REPLAY
        if verdict_reason is not None:
            return verdict_reason
        dev.data = dev.data.accept(msg.seq)
        tx.execute(
            "INSERT INTO events (device_id, seq, kind, received_ms, envelope) "
            "VALUES (?, ?, ?, ?, ?)",
            (dev.device_id, msg.seq, int(msg.KIND), v.item.received_ms, v.item.payload),
        )
        if v.key.generation > 1 and (v.key.device_id, v.key.generation) not in self._retired:
            # The first message signed by a rotated key retires the older ones (once).
            self.registry.retire_older_keys(tx, v.key)
            self._retired.add((v.key.device_id, v.key.generation))
        return self._verdict_plan(dev, msg, frozenset(), stored, tx), False

    def _verdict_plan(
        self,
        dev: DeviceRow,
        msg: m.Report | m.Trigger,
        anomalies: frozenset[str],
        stored: list[Pending],
        tx: Transaction,
    ) -> actions.Plan:
        verdict = judge(msg.risk_pm, dev.streak, anomalies, self.thresholds)
        dev.streak = verdict.streak
        if verdict.decision == FREEZE or anomalies:
            stored.append(
                self.out.risk(
                    tx,
                    dev.fleet,
                    dev.device_id,
                    "alert",
                    ",".join(verdict.reasons),
                    f"verdict {verdict.decision}",
                    msg.seq,
                    msg.risk_pm,
                )
            )
        try:
            return actions.plan(msg, dev.user, verdict, self.cfg)
        except Exception:  # a bug in the mapping must not block the event: store, act not
            log.exception("no pool action for %s seq %d", dev.device_id, msg.seq)
            stored.append(
                self.out.risk(
                    tx,
                    dev.fleet,
                    dev.device_id,
                    "alert",
                    "internal_error",
                    "no pool action",
                    msg.seq,
                    msg.risk_pm,
                )
            )
            return actions.Plan(verdict, (), "internal_error", 0)

    def _session(
        self, tx: Transaction, v: _Verified, dev: DeviceRow, msg: m.Message, stored: list[Pending]
    ) -> Reason | None:
        dev.touched = True
        if isinstance(msg, m.Enrollment):
            return self._rotation(tx, v, dev, msg, stored)
        reason = dev.session.verdict(msg.seq)
        if reason is not None:
            return reason
        dev.session = dev.session.accept(msg.seq)
        tx.execute(
            "INSERT INTO session_events (device_id, kind, seq, received_ms, envelope) "
            "VALUES (?, ?, ?, ?, ?)",
            (dev.device_id, int(msg.KIND), msg.seq, v.item.received_ms, v.item.payload),
        )
        if isinstance(msg, m.Birth):
            dev.data = dev.data.settle_below(msg.resume_seq)
            dev.online, dev.ack = 1, True
            if msg.boot < dev.last_boot:
                stored.append(
                    self.out.risk(
                        tx,
                        dev.fleet,
                        dev.device_id,
                        "alert",
                        "boot_regression",
                        f"boot {msg.boot} after {dev.last_boot}",
                    )
                )
            dev.last_boot = max(dev.last_boot, msg.boot)
        elif isinstance(msg, m.Death):
            dev.online = 0
        return None

    def _rotation(
        self,
        tx: Transaction,
        v: _Verified,
        dev: DeviceRow,
        msg: m.Enrollment,
        stored: list[Pending],
    ) -> Reason | None:
        try:
            new_kid = self.registry.rotate(tx, msg, v.key.kid, v.item.received_ms)
        except RegistryError as exc:
            log.warning("rotation from %s refused: %s", dev.device_id, exc)
            return Reason.BAD_FIELD
        stored.append(
            self.out.command(tx, dev.fleet, dev.device_id, "rotate", {"confirm_kid": new_kid})
        )
        return None

    def _run_pool(self, tx: Transaction, commands: list[Command]) -> list[Outcome]:
        # The service locks the pools in user order first, so bridges cannot deadlock.
        return list(self.service.execute_many(commands, tx=tx)) if commands else []

    def _reject(
        self, tx: Transaction, item: Inbound, device: str | None, reason: Reason, detail: str
    ) -> list[Pending]:
        plain_duplicate = reason is Reason.REPLAY and not detail.startswith(CONFLICT)
        if not plain_duplicate and self._limit.allow(device):
            # Duplicates are normal after a reconnect (counted only); refusals are recorded,
            # at most RATE per device (or per unparseable topic) a minute: garbage is cheap.
            tx.execute(
                "INSERT INTO rejections (received_ms, topic, device_id, reason, detail, envelope) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    item.received_ms,
                    item.topic[:256],
                    device,
                    reason.value,
                    detail[:256],
                    item.payload[:8192],
                ),
            )
        if device is None or plain_duplicate or not self._limit.noted(device):
            return []
        try:
            fleet = topics.parse(item.topic).fleet
            return [self.out.risk(tx, fleet, device, "rejection", reason.value, detail)]
        except ProtocolError:
            return []

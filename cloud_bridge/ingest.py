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
from collections.abc import Callable
from dataclasses import dataclass, field

from cloud_bridge import actions
from cloud_bridge.config import BridgeConfig
from cloud_bridge.pool.commands import Command
from cloud_bridge.pool.service import Outcome, PoolService
from cloud_bridge.publish import Publisher
from cloud_bridge.registry import DeviceKey, Registry, RegistryError, refuse
from cloud_bridge.risk.verdict import FREEZE, Thresholds, judge
from cloud_bridge.store.base import Store, Transaction
from protocol import cose, envelope, topics
from protocol import messages as m
from protocol.errors import ProtocolError, Reason
from protocol.replay import ReplayWindow
from protocol.topics import Channel

log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class Output:
    topic: str
    payload: bytes
    retain: bool = False
    stored: tuple[str, int] | None = None  # (instance, seq) row in `outputs`, deleted on PUBACK


@dataclass(frozen=True)
class _Out:
    """An output before it is signed; the batch's outputs are signed together at the end."""

    topic: str
    message: m.Message
    retain: bool = False
    stored: bool = True


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


@dataclass
class _DeviceRow:
    device_id: str
    fleet: str
    user: str
    status: str
    data: ReplayWindow
    session: ReplayWindow
    streak: int
    last_boot: int
    online: int
    ack: bool = False
    touched: bool = False


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

    def process(self, batch: list[Inbound], act: bool = True) -> BatchResult:
        """Run a batch in one transaction. With `act=False` (the fallback after an unexpected
        error) events are still stored and acked, but no pool command runs: their decisions say
        `internal_error`, so nothing is lost and the device is not stuck resending."""
        result = BatchResult()
        rejections: list[tuple[Inbound, str | None, Reason, str]] = []
        verified = self._verify(batch, result, rejections)
        started = time.perf_counter()
        self._act = act
        with self.store.transaction() as tx:
            outputs = self._apply(tx, verified, rejections, result)
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
        devices = self._lock_devices(tx, {v.key.device_id for v in verified})
        statuses = self._key_statuses(tx, {v.key.kid for v in verified})
        stored: list[_Out] = []
        commands: list[Command] = []
        pending: list[tuple[_Verified, _DeviceRow, actions.Plan]] = []
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
                if outcome is None:
                    continue
                if isinstance(outcome, Reason):
                    rejections.append((v.item, dev.device_id, outcome, f"sequence {msg.seq}"))
                    continue
                pending.append((v, dev, outcome))
                commands.extend(outcome.commands)
                result.accepted += 1
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
        for user, (fleet, o) in states.items():
            stored.append(self._pool_state(tx, fleet, user, o))
        for item, device, reason, detail in rejections:
            result.rejected[reason.value] += 1
            stored.extend(self._reject(tx, item, device, reason, detail))
        self._save_devices(tx, devices)
        acks = [self._ack(tx, d) for d in devices.values() if d.ack]
        outputs = self._seal_all(stored + acks)
        self._store_outputs(tx, outputs)
        return outputs

    def _seal_all(self, pending: list[_Out]) -> list[Output]:
        """Sign the batch's outputs (threads did not pay here: the Python around the crypto
        holds the GIL; several bridge processes in a share group scale instead)."""
        payloads = [self.publisher.seal(p.message) for p in pending]
        return [
            Output(p.topic, data, p.retain, (p.message.sender, p.message.seq) if p.stored else None)
            for p, data in zip(pending, payloads, strict=True)
        ]

    # ---- steps --------------------------------------------------------------------------------

    def _lock_devices(self, tx: Transaction, ids: set[str]) -> dict[str, _DeviceRow]:
        out: dict[str, _DeviceRow] = {}
        lock = " FOR UPDATE" if tx.dialect == "postgres" else ""
        for device_id in sorted(ids):  # one lock order for every bridge: no deadlocks
            row = tx.fetchone(
                "SELECT device_id, fleet, user_id, status, data_window, session_window, "
                f"risk_streak, last_boot, online FROM devices WHERE device_id = ?{lock}",
                (device_id,),
            )
            if row is not None:
                out[device_id] = _DeviceRow(
                    str(row[0]),
                    str(row[1]),
                    str(row[2]),
                    str(row[3]),
                    ReplayWindow.from_bytes(bytes(row[4])),
                    ReplayWindow.from_bytes(bytes(row[5])),
                    int(row[6]),
                    int(row[7]),
                    int(row[8]),
                )
        return out

    def _key_statuses(self, tx: Transaction, kids: set[bytes]) -> dict[bytes, str]:
        out = {}
        for kid in kids:
            status = tx.scalar("SELECT status FROM device_keys WHERE kid = ?", (kid,))
            out[kid] = str(status) if status is not None else "unknown"
        return out

    def _check(self, v: _Verified, dev: _DeviceRow | None, statuses: dict[bytes, str]) -> None:
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
        dev: _DeviceRow,
        msg: m.Report | m.Trigger,
        stored: list[_Out],
    ) -> actions.Plan | Reason | None:
        dev.ack = dev.touched = True
        verdict_reason = dev.data.verdict(msg.seq)
        if verdict_reason is Reason.REPLAY:
            old = tx.scalar(
                "SELECT envelope FROM events WHERE device_id = ? AND seq = ?",
                (dev.device_id, msg.seq),
            )
            if old is not None and cose.peek_payload(bytes(old)) != v.payload:
                # The same number with other content: two boards share this key.
                return self._verdict_plan(dev, msg, frozenset({"seq_conflict"}), stored, tx)
            return Reason.REPLAY
        if verdict_reason is not None:
            return verdict_reason
        dev.data = dev.data.accept(msg.seq)
        tx.execute(
            "INSERT INTO events (device_id, seq, kind, received_ms, envelope) "
            "VALUES (?, ?, ?, ?, ?)",
            (dev.device_id, msg.seq, int(msg.KIND), v.item.received_ms, v.item.payload),
        )
        if v.key.generation > 1:
            self.registry.retire_older_keys(tx, v.key)
        return self._verdict_plan(dev, msg, frozenset(), stored, tx)

    def _verdict_plan(
        self,
        dev: _DeviceRow,
        msg: m.Report | m.Trigger,
        anomalies: frozenset[str],
        stored: list[_Out],
        tx: Transaction,
    ) -> actions.Plan:
        verdict = judge(msg.risk_pm, dev.streak, anomalies, self.thresholds)
        dev.streak = verdict.streak
        if verdict.decision == FREEZE or anomalies:
            stored.append(
                self._risk(
                    tx,
                    dev,
                    "alert",
                    ",".join(verdict.reasons)[:32],
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
                self._risk(
                    tx, dev, "alert", "internal_error", "no pool action", msg.seq, msg.risk_pm
                )
            )
            return actions.Plan(verdict, (), "internal_error", 0)

    def _session(
        self, tx: Transaction, v: _Verified, dev: _DeviceRow, msg: m.Message, stored: list[_Out]
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
                    self._risk(
                        tx,
                        dev,
                        "alert",
                        "boot_regression",
                        f"boot {msg.boot} after {dev.last_boot}",
                        0,
                        0,
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
        dev: _DeviceRow,
        msg: m.Enrollment,
        stored: list[_Out],
    ) -> Reason | None:
        try:
            new_kid = self.registry.rotate(tx, msg, v.key.kid, v.item.received_ms)
        except RegistryError as exc:
            log.warning("rotation from %s refused: %s", dev.device_id, exc)
            return Reason.BAD_FIELD
        cmd = self.publisher.make(
            m.Command, tx, device=dev.device_id, command="rotate", args={"confirm_kid": new_kid}
        )
        stored.append(_Out(topics.command(dev.fleet, dev.device_id, "rotate"), cmd))
        return None

    def _run_pool(self, tx: Transaction, commands: list[Command]) -> list[Outcome]:
        # The service locks the pools in user order first, so bridges cannot deadlock.
        return list(self.service.execute_many(commands, tx=tx)) if commands else []

    def _decision(
        self,
        tx: Transaction,
        v: _Verified,
        dev: _DeviceRow,
        plan: actions.Plan,
        outcomes: dict[str, Outcome],
    ) -> _Out:
        msg = v.message
        assert isinstance(msg, m.Report | m.Trigger)
        ran = [outcomes[c.key] for c in plan.commands if c.key in outcomes]
        main = next((o for o in ran if not o.key.endswith(":freeze")), None)
        result = main or (ran[0] if ran else None)
        failed = not self._act and plan.commands
        decision = self.publisher.make(
            m.Decision,
            tx,
            user=dev.user,
            device=dev.device_id,
            device_seq=msg.seq,
            decision=plan.verdict.decision,
            action=plan.action,
            result="internal_error" if failed else result.result.value[:32] if result else "ok",
            amount_fen=plan.amount_fen,
            risk_pm=msg.risk_pm,
            reasons=plan.verdict.reasons[:16],
            received_ms=v.item.received_ms,
        )
        topic = topics.pool(dev.fleet, dev.user, Channel.POOL_DECISION)
        return _Out(topic, decision)

    def _pool_state(self, tx: Transaction, fleet: str, user: str, outcome: Outcome) -> _Out:
        view = outcome.view
        assert view is not None
        state = self.publisher.make(
            m.PoolState,
            tx,
            user=user,
            status=view.status,
            limit_fen=view.limit_fen,
            available_fen=view.available_fen,
            outstanding_fen=view.outstanding_fen,
            held_fen=view.held_fen,
            rate_bps=view.rate_bps,
            version=view.version,
        )
        topic = topics.pool(fleet, user, Channel.POOL_STATE)
        return _Out(topic, state, retain=True)

    def _risk(
        self,
        tx: Transaction,
        dev: _DeviceRow,
        category: str,
        reason: str,
        detail: str,
        device_seq: int,
        risk_pm: int,
    ) -> _Out:
        note = self.publisher.make(
            m.Risk,
            tx,
            device=dev.device_id,
            category=category,
            reason=reason[:32],
            detail=detail[:256],
            device_seq=max(0, device_seq),
            risk_pm=risk_pm,
        )
        topic = topics.risk(dev.fleet, dev.device_id)
        return _Out(topic, note)

    def _reject(
        self, tx: Transaction, item: Inbound, device: str | None, reason: Reason, detail: str
    ) -> list[_Out]:
        if reason is not Reason.REPLAY:  # duplicates are normal after a reconnect: count only
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
        if device is None or reason is Reason.REPLAY:
            return []
        try:
            fleet = topics.parse(item.topic).fleet
            topic = topics.risk(fleet, device)
        except ProtocolError:
            return []
        note = self.publisher.make(
            m.Risk,
            tx,
            device=device,
            category="rejection",
            reason=reason.value,
            detail=detail[:256],
        )
        return [_Out(topic, note)]

    def _save_devices(self, tx: Transaction, devices: dict[str, _DeviceRow]) -> None:
        now = self.wall_ms()
        rows = [
            (
                d.data.to_bytes(),
                d.session.to_bytes(),
                d.streak,
                d.last_boot,
                d.online,
                now,
                d.device_id,
            )
            for d in devices.values()
            if d.touched
        ]
        if rows:
            tx.executemany(
                "UPDATE devices SET data_window = ?, session_window = ?, risk_streak = ?, "
                "last_boot = ?, online = ?, last_seen_ms = ? WHERE device_id = ?",
                rows,
            )

    def _store_outputs(self, tx: Transaction, outputs: list[Output]) -> None:
        now = self.wall_ms()
        rows = [
            (o.stored[0], o.stored[1], o.topic, o.payload, int(o.retain), now)
            for o in outputs
            if o.stored
        ]
        if rows:
            tx.executemany(
                "INSERT INTO outputs (instance, seq, topic, payload, retain, created_ms) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )

    def _ack(self, tx: Transaction, dev: _DeviceRow) -> _Out:
        """Built in the transaction, published after the commit (the window is durable then)."""
        ack = self.publisher.make(m.Ack, tx, device=dev.device_id, ack_seq=dev.data.contiguous)
        return _Out(topics.device(dev.fleet, dev.device_id, Channel.ACK), ack, stored=False)

"""What the bridge publishes, built inside the batch transaction and signed together.

Every output is numbered by the publisher in the transaction; the ones that must survive a crash
between commit and publish (decisions, pool states, risk notes, commands) are stored in the
`outputs` table in the same transaction and deleted once the broker has them. Acks are not
stored: a device that misses one resends, and the resend is acked again.

Operator commands (`cloud-bridge pool ...`) store pool states the same way under the sender
`<bridge id>-cli`; a running bridge takes those rows over into its own numbering (`adopt`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cloud_bridge.actions import Plan
from cloud_bridge.broker_cli import CLI_SUFFIX
from cloud_bridge.judge import RiskNote
from cloud_bridge.pool.events import Event
from cloud_bridge.pool.service import Outcome
from cloud_bridge.pool.view import PoolView
from cloud_bridge.publish import Publisher
from cloud_bridge.store.base import Transaction
from cloud_bridge.store.ingest_repo import OutputRow, operator_outputs, store_outputs, take_output
from protocol import cose, direct, topics
from protocol import messages as m
from protocol.errors import ProtocolError
from protocol.topics import Channel

OPERATOR_BATCH = 500
"""Outputs of operator commands and schedulers a bridge takes over at once."""
TOPIC_CACHE = 65_536
"""Topics remembered, parsed or built (a few per device and user): each validates every part."""
_pool_topic = functools.lru_cache(maxsize=TOPIC_CACHE)(topics.pool)
_risk_topic = functools.lru_cache(maxsize=TOPIC_CACHE)(topics.risk)
_device_topic = functools.lru_cache(maxsize=TOPIC_CACHE)(topics.device)


@dataclass(frozen=True, slots=True)
class Output:
    topic: str
    payload: bytes
    retain: bool = False
    stored: tuple[str, int] | None = None  # (instance, seq) row in `outputs`, deleted on PUBACK


@dataclass(frozen=True, slots=True)
class Pending:
    """An output before it is signed (its encoded payload and its seq in this instance's
    numbering); a batch's outputs are signed together at the end."""

    topic: str
    payload: bytes
    seq: int
    retain: bool = False
    stored: bool = True


class Outputs:
    def __init__(
        self,
        publisher: Publisher,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.publisher = publisher
        self.wall_ms = wall_ms

    def decision(
        self,
        tx: Transaction,
        fleet: str,
        user: str,
        event: m.Report | m.Trigger | m.Application,
        plan: Plan,
        result: str,
        received_ms: int,
    ) -> Pending:
        # Every value comes from a validated event or the bridge's own enums and numbers, so
        # the payload is written directly (protocol.direct), without a validated message.
        pub, seq = self.publisher, self.publisher.next_seq(tx)
        payload = direct.decision(
            sender=pub.instance,
            seq=seq,
            boot=pub.boot,
            ts_ms=pub.wall_ms(),
            user=user,
            device=event.sender,
            device_seq=event.seq,
            decision=plan.verdict.level.value,
            action=plan.action.value,
            result=result[:32],
            amount_fen=plan.amount_fen,
            risk_pm=event.risk_pm,
            reasons=_reasons(plan)[:16],
            received_ms=received_ms,
        )
        return Pending(_pool_topic(fleet, user, Channel.POOL_DECISION), payload, seq)

    def pool_state(self, tx: Transaction, fleet: str, outcome: Outcome) -> Pending:
        assert outcome.view is not None
        return self.pool_view(tx, fleet, outcome.view)

    def pool_view(self, tx: Transaction, fleet: str, view: PoolView) -> Pending:
        """The retained PoolState of a pool as it is now: after a change, or to put the current
        state back over an older or an empty one (cloud_bridge.guard)."""
        pub, seq = self.publisher, self.publisher.next_seq(tx)
        payload = direct.pool_state(
            sender=pub.instance,
            seq=seq,
            boot=pub.boot,
            ts_ms=pub.wall_ms(),
            user=view.user,
            status=view.status,
            limit_fen=view.limit_fen,
            available_fen=view.available_fen,
            outstanding_fen=view.outstanding_fen,
            held_fen=view.held_fen,
            rate_bps=view.rate_bps,
            version=view.version,
            updated_ms=view.updated_ms,
        )
        topic = _pool_topic(fleet, view.user, Channel.POOL_STATE)
        return Pending(topic, payload, seq, retain=True)

    def pool_events(self, tx: Transaction, fleet: str, outcome: Outcome) -> list[Pending]:
        """One signed PoolEvent per event of a change (docs/protocol.md, "Pool events"): none
        for a replayed key or a command that changed nothing. Built before the change's
        PoolState, so a reader sees what happened, then the balances it led to."""
        if outcome.replayed or not outcome.events or outcome.view is None:
            return []
        topic = _pool_topic(fleet, outcome.user, Channel.POOL_EVENT)
        count = len(outcome.events)
        pending = []
        for index, event in enumerate(outcome.events):
            msg = self.publisher.make(
                m.PoolEvent,
                tx,
                user=outcome.user,
                version=outcome.view.version,
                index=index,
                count=count,
                event=event.kind,
                at_ms=max(0, event.at_ms),
                data=dict(event.data),
                command=outcome.kind,
                key=outcome.key,
                result=outcome.result.value,
            )
            pending.append(Pending(topic, m.encode(msg), msg.seq))
        return pending

    def payout(
        self,
        tx: Transaction,
        fleet: str,
        outcome: Outcome,
        drawn: Event,
        trigger: m.Report | m.Trigger | m.Application,
        received_ms: int,
    ) -> Pending:
        """The signed payout instruction of an emergency draw the pool granted (`drawn`, its
        event), with the draw's idempotency key; stored like every output that must survive a
        crash."""
        assert outcome.view is not None
        msg = self.publisher.make(
            m.Payout,
            tx,
            user=outcome.user,
            amount_fen=int(drawn.data["amount_fen"]),
            tier=str(drawn.data["emergency"]),
            key=outcome.key,
            version=outcome.view.version,
            device=trigger.sender,
            device_seq=trigger.seq,
            received_ms=received_ms,
            budget_ms=int(drawn.data["respond_within_ms"]),
        )
        topic = _pool_topic(fleet, outcome.user, Channel.POOL_PAYOUT)
        return Pending(topic, m.encode(msg), msg.seq)

    def pool_change(self, tx: Transaction, fleet: str, outcome: Outcome) -> list[Pending]:
        """Everything one command publishes about its pool: its events, then the new state."""
        if outcome.replayed or not outcome.events or outcome.view is None:
            return []
        return [*self.pool_events(tx, fleet, outcome), self.pool_state(tx, fleet, outcome)]

    def risk(self, tx: Transaction, fleet: str, device: str, note: RiskNote) -> Pending:
        # As with decisions: the device is an enrolled or a parsed topic's, the codes are the
        # bridge's own, the texts are cut to the schema's lengths (protocol.direct).
        pub, seq = self.publisher, self.publisher.next_seq(tx)
        payload = direct.risk(
            sender=pub.instance,
            seq=seq,
            boot=pub.boot,
            ts_ms=pub.wall_ms(),
            device=device,
            category=note.category.value,
            reason=note.reason[:32],
            detail=note.detail[:256],
            device_seq=max(0, note.device_seq),
            risk_pm=note.risk_pm,
        )
        return Pending(_risk_topic(fleet, device), payload, seq)

    def command(
        self,
        tx: Transaction,
        fleet: str,
        device: str,
        name: str,
        args: dict[str, int | str | bytes | bool],
    ) -> Pending:
        msg = self.publisher.make(m.Command, tx, device=device, command=name, args=args)
        return Pending(topics.command(fleet, device, name), m.encode(msg), msg.seq)

    def ack(self, tx: Transaction, fleet: str, device: str, ack_seq: int) -> Pending:
        """Built in the transaction, published after the commit (the window is durable then)."""
        pub, seq = self.publisher, self.publisher.next_seq(tx)
        payload = direct.ack(
            sender=pub.instance,
            seq=seq,
            boot=pub.boot,
            ts_ms=pub.wall_ms(),
            device=device,
            ack_seq=ack_seq,
        )
        return Pending(_device_topic(fleet, device, Channel.ACK), payload, seq, stored=False)

    def seal_and_store(self, tx: Transaction, pending: list[Pending]) -> list[Output]:
        """Sign the batch's outputs, store the ones that must survive a crash, keep order."""
        sign1, instance = self.publisher.signer.sign1, self.publisher.instance
        outputs = [
            Output(p.topic, sign1(p.payload), p.retain, (instance, p.seq) if p.stored else None)
            for p in pending
        ]
        rows = [
            OutputRow(o.stored[0], o.stored[1], o.topic, o.payload, o.retain)
            for o in outputs
            if o.stored
        ]
        store_outputs(tx, rows, self.wall_ms())
        return outputs

    def adopt_operator_outputs(self, tx: Transaction) -> list[Output]:
        """Take over what operator commands and schedulers stored (`adopt`), oldest first, at
        most OPERATOR_BATCH rows. The bridge calls it on a timer, and inside a batch that ran
        pool commands, after the batch locked its pools and before its own outputs: a change
        committed before the batch's is then published before it, whoever made it."""
        rows = operator_outputs(tx, CLI_SUFFIX, OPERATOR_BATCH)
        return self.adopt(tx, in_pool_order(rows)) if rows else []

    def adopt(self, tx: Transaction, rows: Sequence[OutputRow]) -> list[Output]:
        """Take over stored outputs that an operator command wrote (signed with the bridge key
        by `cloud-bridge pool ...`, which has no connection of its own): each row moves to this
        instance's numbering in `tx`, so one bridge alone publishes it, at least once (again
        after a restart, like its own), in the order given."""
        pub = self.publisher
        outputs = [
            Output(r.topic, r.payload, r.retain, (pub.instance, pub.next_seq(tx)))
            for r in rows
            if take_output(tx, r.instance, r.seq)
        ]
        moved = [
            OutputRow(pub.instance, o.stored[1], o.topic, o.payload, o.retain)
            for o in outputs
            if o.stored
        ]
        store_outputs(tx, moved, self.wall_ms())
        return outputs


def in_pool_order(rows: Sequence[OutputRow]) -> list[OutputRow]:
    """`rows` with the PoolEvents and PoolStates of each user in version order (events by
    index, then the state), in the places such rows had: rows written by concurrent processes
    are stored in commit order only to the millisecond, and a reader wants a user's changes in
    order. Other rows, and rows that do not decode, keep their places."""
    places: list[int] = []
    keyed: list[tuple[tuple[str, int, int, int], OutputRow]] = []
    for i, row in enumerate(rows):
        try:
            msg = m.decode(cose.peek_payload(row.payload))
        except ProtocolError:
            continue
        if isinstance(msg, m.PoolEvent):
            keyed.append(((msg.user, msg.version, 0, msg.index), row))
        elif isinstance(msg, m.PoolState):
            keyed.append(((msg.user, msg.version, 1, 0), row))
        else:
            continue
        places.append(i)
    out = list(rows)
    for place, (_key, row) in zip(places, sorted(keyed, key=lambda kr: kr[0]), strict=True):
        out[place] = row
    return out


def _reasons(plan: Plan) -> tuple[str, ...]:
    """A decision's reasons: the risk verdict's, then an application's ranked reasons."""
    if plan.approval is None:
        return plan.verdict.reasons
    return (*plan.verdict.reasons, *plan.approval.reasons)

"""Ingest: a batch of raw MQTT messages in, one database transaction, signed outputs out.

    topic -> verify (registry key) ............................ `cloud_bridge.verify`, no lock
    read the batch's devices, key statuses, reused numbers ..... `store.ingest_repo`, one query each
    judge each message (checks, replay windows, risk, plan) .... `cloud_bridge.judge`, pure
    pool commands .............................................. `PoolService.execute_many`
    decisions, pool states, risk notes, acks; logs, device rows  `store.ingest_repo`, one write each
    commit -> acks (the window's contiguous edge) and the stored outputs, to be published

Verification happens before the transaction (it is the expensive part and needs no lock). One
transaction covers the events, the replay windows, the pool commands and the outputs of the
whole batch, so a crash anywhere either keeps all of it or none of it; the device then resends
what was not acked. Every refusal has a reason code and is counted; within a budget a sender
cannot multiply (`cloud_bridge.refusals`) it is also recorded in `rejections` and published on
the device's risk topic (plain duplicates are only counted); none writes to the ledger. A
payload over the envelope limit is refused unread: the network thread keeps only its first
bytes (`Inbound.received`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from cloud_bridge import actions, desired_sync
from cloud_bridge.actions import Plan, StepUp
from cloud_bridge.config import BridgeConfig
from cloud_bridge.device_state import DeviceState
from cloud_bridge.ingest_types import OVERSIZE_KEPT as OVERSIZE_KEPT  # re-exported
from cloud_bridge.ingest_types import BatchResult as BatchResult  # re-exported
from cloud_bridge.ingest_types import Inbound as Inbound  # re-exported
from cloud_bridge.ingest_types import PayoutTiming as PayoutTiming  # re-exported
from cloud_bridge.ingest_types import Refused
from cloud_bridge.judge import (
    DATA_KINDS,
    Category,
    DataEvent,
    Rejection,
    RiskNote,
    Rules,
    Signed,
    decision_result,
    judge,
    newest_states,
)
from cloud_bridge.outputs import Output, Outputs, Pending
from cloud_bridge.pool.applying import application, device_signals
from cloud_bridge.pool.commands import Draw
from cloud_bridge.pool.service import Outcome, PoolService
from cloud_bridge.publish import Publisher
from cloud_bridge.refusals import Budget, RefusalBudget
from cloud_bridge.registry import Registry, RegistryError
from cloud_bridge.risk.user_signals import UserMemory
from cloud_bridge.risk.verdict import Level
from cloud_bridge.stepups import StepUps
from cloud_bridge.store import ingest_repo as repo
from cloud_bridge.store import stepup_repo
from cloud_bridge.store.base import Store, Transaction
from cloud_bridge.store.ingest_repo import KEY_UNKNOWN, LogRow, RejectionRow
from cloud_bridge.verify import Verified, Verifier, parse_topic
from mqttc.throttle import Throttle
from protocol import messages as m
from protocol.errors import ProtocolError, Reason

log = logging.getLogger(__name__)
_STALE_KEY = (Reason.REVOKED_KEY, Reason.RETIRED_KEY)  # refusals that mean a cached key changed


@dataclass(frozen=True, slots=True)
class _Decide:
    """A data event whose decision waits for its pool commands."""

    item: Inbound
    event: DataEvent
    state: DeviceState
    plan: Plan
    received_ms: int = -1  # when its event arrived, if not with `item` (a held event)

    @property
    def event_received_ms(self) -> int:
        return self.item.received_ms if self.received_ms < 0 else self.received_ms


class Ingest:
    def __init__(
        self,
        store: Store,
        registry: Registry,
        publisher: Publisher,
        service: PoolService,
        cfg: BridgeConfig,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        mono_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.registry = registry
        self.publisher = publisher
        self.service = service
        self.cfg = cfg
        self.wall_ms = wall_ms
        self.rules = Rules.of(cfg)
        self._retired: set[tuple[str, int]] = set()
        self.budget = RefusalBudget(Budget(cfg.refusals_per_key, cfg.refusals_per_reason), mono_s)
        self._warnings = Throttle()  # per-message log lines, at most one per reason a minute
        self.verifier = Verifier(cfg.fleet, store, registry, self._warnings)
        self.out = Outputs(publisher, wall_ms)
        self.stepups = StepUps(
            self.out, cfg, service.policy.emergency, self.rules.thresholds.signals
        )

    # ---- the batch ----------------------------------------------------------------------------

    def process(
        self, batch: list[Inbound], act: bool = True, forget: Sequence[tuple[str, int]] = ()
    ) -> BatchResult:
        """Run a batch in one transaction. With `act=False` (the fallback after an unexpected
        error) events are still stored and acked, but no pool command runs: their decisions say
        `internal_error`, so nothing is lost and the device is not stuck resending. `forget`:
        (instance, seq) of stored outputs the broker has, deleted in the same transaction."""
        verified, refused = self.verifier.verify(batch)
        started = time.perf_counter()
        try:
            with self.store.transaction() as tx:
                repo.forget_outputs(tx, forget)
                result = self._apply(tx, verified, refused, act)
        except BaseException:
            self.publisher.invalidate()  # its block may have been reserved in this rollback
            raise
        return BatchResult(
            result.outputs, result.accepted, result.rejected, result.unstored, result.decided_ns,
            time.perf_counter() - started, result.action_refusals, result.risk_reasons,
            result.payouts,
        )  # fmt: skip

    def _apply(
        self,
        tx: Transaction,
        verified: list[Verified],
        refused: list[Refused],
        act: bool,
    ) -> BatchResult:
        states = repo.lock_devices(tx, {v.signed.key.device_id for v in verified})
        statuses = repo.key_statuses(tx, {v.signed.key.kid for v in verified})
        logged = repo.stored_envelopes(tx, _reused(verified, states))
        # Per-user risk memory, read only for the users whose messages give those signals
        # something (a trigger, a location): most batches are plain reports and read nothing.
        wanted = _user_signalled(verified, states)
        # ... and the users of the step-ups the batch's answers may settle (their phone may
        # belong to someone else by now): locked here, in user order, before the step-up rows.
        wanted |= stepup_repo.owners(tx, _answers(verified, states))
        users = repo.lock_users(tx, wanted)
        users_touched: set[str] = set()
        pending: list[Pending] = []  # outputs in message order, before the decisions
        decide: list[_Decide] = []
        events: list[LogRow] = []
        session_events: list[LogRow] = []
        touched: set[str] = set()
        acked: set[str] = set()
        births: list[tuple[str, str, int]] = []  # device, fleet, config version it runs
        answers: list[tuple[str, int, str]] = []  # device, cmd_seq, cmd_result
        accepted = 0
        for item, s in ((v.item, v.signed) for v in verified):
            device, msg = s.key.device_id, s.message
            before = states.get(device)
            stored = logged.get((device, msg.seq)) if isinstance(msg, DATA_KINDS) else None
            user = None
            if before is not None and before.user in wanted:
                user = users.get(before.user, UserMemory())
            j = judge(before, s, statuses.get(s.key.kid, KEY_UNKNOWN), stored, self.rules, user)
            if before is not None and j.user_memory is not None and j.user_memory != user:
                users[before.user] = j.user_memory
                users_touched.add(before.user)
            if j.state is not None:
                states[device] = j.state
            if j.touched:
                touched.add(device)
            if j.ack:
                acked.add(device)
            if j.rejection is not None:
                refused.append(Refused(item, j.rejection, s.key.device_id))
                if j.rejection.reason in _STALE_KEY:  # the cache must ask again
                    self.registry.forget(device)
            if j.event is not None:
                events.append(j.event)
                logged[(device, j.event.seq)] = j.event.envelope  # a later copy in this batch
            if j.session_event is not None:
                session_events.append(j.session_event)
            if j.retire_older and (device, s.key.generation) not in self._retired:
                # The first message signed by a rotated key retires the older ones (once).
                self.registry.retire_older_keys(tx, s.key)
                self._retired.add((device, s.key.generation))
            if j.rotation is not None:
                rotated = self._rotate(tx, s, j.rotation)
                if isinstance(rotated, Rejection):
                    refused.append(Refused(item, rotated, s.key.device_id))
                    continue
                pending.append(rotated)
            if j.rejection is None and isinstance(msg, m.Birth):
                births.append((device, s.where.fleet, msg.config_version))
            if j.event is not None and isinstance(msg, m.Report) and msg.cmd_seq:
                answers.append((device, msg.cmd_seq, msg.cmd_result))
            if j.state is not None:  # notes and plans are of devices that exist
                pending.extend(self.out.risk(tx, j.state.fleet, device, n) for n in j.notes)
                if j.plan is not None and isinstance(msg, DATA_KINDS):
                    mine = users.get(j.state.user, UserMemory())  # a trigger's user is wanted
                    plan = self.stepups.gate(j.plan, mine)  # a touch-locked user: refused
                    decide.append(_Decide(item, msg, j.state, plan))
                if j.plan is not None and isinstance(msg, m.Report) and msg.cmd_seq:
                    # An answer to a step-up: its held event's action runs (or is dropped) in
                    # this batch, decided with the others.
                    ok = j.plan.verdict.level is Level.ALLOW
                    done = self.stepups.answer(tx, j.state, msg, ok, s.received_ms, users, wanted)
                    if done is not None and done.memory is not None:
                        users[done.row.pending.user] = done.memory  # habits, touch template
                        users_touched.add(done.row.pending.user)
                    if done is not None:
                        pending.extend(done.notes)
                        held = done.row.pending.opened_ms
                        decide.append(_Decide(item, done.event, j.state, done.plan, held))
            accepted += j.rejection is None
        pending.extend(desired_sync.outputs(tx, self.out, births, answers, self.wall_ms()))
        if act:
            decide = [self._approve(tx, d) for d in decide]
        outputs, decided_ns, action_refusals, payouts = self._decide(tx, decide, act)
        # With the batch's pools locked, changes that operator commands and schedulers committed
        # before go out ahead of the batch's own: per user, in version order.
        ran_commands = act and any(d.plan.commands for d in decide)
        adopted = self.out.adopt_operator_outputs(tx) if ran_commands else []
        risk_reasons = Counter(r for d in decide for r in d.plan.verdict.reasons)
        pending.extend(outputs)
        rejected: Counter[Reason] = Counter()
        unstored: Counter[Reason] = Counter()
        rejections: list[RejectionRow] = []
        for r in refused:
            reason = r.rejection.reason
            rejected[reason] += 1
            if not r.rejection.recorded:  # duplicates are normal after a reconnect: counted only
                continue
            if not self.budget.charge(r.signer, reason):
                unstored[reason] += 1
                continue
            rejections.append(_row(r))
            note = self._note(tx, r)
            if note is not None:
                pending.append(note)
        repo.append_events(tx, events)
        repo.append_session_events(tx, session_events)
        repo.append_rejections(tx, rejections)
        now = self.wall_ms()
        repo.save_devices(tx, [d for d in states.values() if d.device_id in touched], now)
        repo.save_users(tx, {u: users[u] for u in users_touched}, now)
        acks = [
            self.out.ack(tx, d.fleet, d.device_id, d.data.contiguous)
            for d in states.values()
            if d.device_id in acked
        ]
        sealed = self.out.seal_and_store(tx, pending + acks)
        return BatchResult(
            (*adopted, *sealed), accepted, rejected, unstored, tuple(decided_ns), 0.0,
            action_refusals, risk_reasons, payouts,
        )  # fmt: skip

    def _decide(
        self, tx: Transaction, decide: list[_Decide], act: bool
    ) -> tuple[list[Pending], list[int], Counter[str], tuple[PayoutTiming, ...]]:
        """Run the batch's pool commands; their decisions, their events, the payout
        instructions of granted emergency draws, then the pools' newest states; and the
        refusals of the events' own commands, by result code."""
        commands = [c for d in decide for c in d.plan.commands]
        # The service locks the pools in user order first, so bridges cannot deadlock.
        ran = self.service.execute_many(commands, tx=tx) if act and commands else []
        outcomes: dict[str, Outcome] = {o.key: o for o in ran}
        out = [
            self.out.decision(
                tx, d.state.fleet, d.state.user, d.event, actions.settled(d.plan, outcomes),
                decision_result(d.plan, outcomes, act), d.event_received_ms,
            )
            for d in decide
        ]  # fmt: skip
        refused = Counter(
            r.value for r in (actions.refusal(d.plan, outcomes) for d in decide) if r is not None
        )
        updates = newest_states(
            (d.state.fleet, outcomes[c.key])
            for d in decide
            for c in d.plan.commands
            if c.key in outcomes
        )
        # Every change's events, in the order the changes were made (so per user in version
        # order), then each pool's newest state.
        fleets = {c.key: d.state.fleet for d in decide for c in d.plan.commands}
        for outcome in ran:
            out.extend(self.out.pool_events(tx, fleets[outcome.key], outcome))
        payouts = []
        for d in decide:
            for command in d.plan.commands:
                granted = outcomes.get(command.key)
                if granted is None or not isinstance(command, Draw) or command.emergency is None:
                    continue
                drawn = actions.granted_draw(granted)
                if drawn is None:
                    continue
                budget = int(drawn.data["respond_within_ms"])
                out.append(
                    self.out.payout(tx, d.state.fleet, granted, drawn, d.event, d.event_received_ms)
                )
                # a held event (step-up) counts from its trigger's arrival, not its confirmation
                held_ns = (d.item.received_ms - d.event_received_ms) * 1_000_000
                payouts.append(
                    PayoutTiming(
                        d.state.fleet, d.event.sender, d.event.seq, command.emergency.value,
                        d.item.received_ns - held_ns, budget,
                    )
                )  # fmt: skip
        out.extend(self.out.pool_state(tx, u.fleet, u.outcome) for u in updates)
        out.extend(
            self.stepups.open(tx, d.state, d.event, d.item.received_ms)
            for d in decide
            if d.plan.stepup is StepUp.PENDING and isinstance(d.event, m.Trigger)
        )
        return out, [d.item.received_ns for d in decide], refused, tuple(payouts)

    def expire_stepups(self) -> tuple[Output, ...]:
        """Settle the step-ups whose deadline passed (`step_up_expired` decisions), in a
        transaction of their own; the outputs to publish."""
        now = self.wall_ms()
        with self.store.transaction() as tx:
            done = self.stepups.expire(tx, now)
            if not done:
                return ()
            pending = [
                self.out.decision(
                    tx, r.row.fleet, r.row.pending.user, r.event, r.plan,
                    decision_result(r.plan, {}, True), r.row.pending.opened_ms,
                )
                for r in done
            ]  # fmt: skip
            return tuple(self.out.seal_and_store(tx, pending))

    def _approve(self, tx: Transaction, d: _Decide) -> _Decide:
        """An application's plan with its decision: the scorecard and the user's devices, as
        `cloud-bridge pool apply` decides (`pool.applying`, the same code)."""
        plan, card = d.plan, self.rules.scorecard
        if (
            not isinstance(d.event, m.Application)
            or card is None
            or plan.action is not actions.Action.APPLY
            or plan.verdict.level not in actions.ACTING_LEVELS
        ):
            return d
        user, policy = d.state.user, self.service.policy
        signals = device_signals(tx, user)
        decision = application(d.event.applicant, signals, card, self.service.clock(), policy)
        key = f"{d.event.sender}:{d.event.seq}:apply"
        return replace(d, plan=actions.approved(plan, user, key, decision))

    def _rotate(self, tx: Transaction, s: Signed, record: m.Enrollment) -> Pending | Rejection:
        device = s.key.device_id
        try:
            new_kid = self.registry.rotate(tx, record, s.key.kid, s.received_ms)
        except RegistryError as exc:
            self._warnings.warn(
                log, "rotation_refused", _mono_ms(), "rotation from %s refused: %s", device, exc
            )
            return Rejection(Reason.BAD_FIELD, f"sequence {record.seq}", device=device)
        return self.out.command(tx, s.where.fleet, device, "rotate", {"confirm_kid": new_kid})

    def _note(self, tx: Transaction, r: Refused) -> Pending | None:
        """The risk note of a stored refusal, on the risk topic of the device its topic names."""
        rej = r.rejection
        if rej.device is None:
            return None
        try:
            fleet = parse_topic(r.item.topic).fleet
        except ProtocolError:
            return None
        return self.out.risk(
            tx, fleet, rej.device, RiskNote(Category.REJECTION, rej.reason.value, rej.detail)
        )


def _row(r: Refused) -> RejectionRow:
    rej, item = r.rejection, r.item
    return RejectionRow(
        item.received_ms, item.topic, rej.device, rej.reason.value, rej.detail, item.payload
    )


def _mono_ms() -> int:
    return time.monotonic_ns() // 1_000_000


def _user_signalled(verified: Sequence[Verified], states: Mapping[str, DeviceState]) -> set[str]:
    """The users of the batch's data messages that the per-user signals judge: triggers (the
    sequence model), located events (impossible travel across the user's devices) and answers
    to a command (a confirmed step-up teaches the sequence model its trigger)."""
    out = set()
    for s in (v.signed for v in verified):
        msg, state = s.message, states.get(s.key.device_id)
        if state is None or not isinstance(msg, (m.Report, m.Trigger)):
            continue  # an application has no location, no sequence and answers no command
        if isinstance(msg, m.Trigger) or msg.location is not None or msg.cmd_seq:
            out.add(state.user)
    return out


def _answers(
    verified: Sequence[Verified], states: Mapping[str, DeviceState]
) -> list[tuple[str, int]]:
    """(device, cmd_seq) of the batch's reports that answer a command."""
    return [
        (s.key.device_id, s.message.cmd_seq)
        for s in (v.signed for v in verified)
        if s.key.device_id in states and isinstance(s.message, m.Report) and s.message.cmd_seq
    ]


def _reused(
    verified: Sequence[Verified], states: Mapping[str, DeviceState]
) -> set[tuple[str, int]]:
    """(device, seq) of the batch's data messages whose number the stored window has seen:
    the only ones whose logged envelope the judge may need (to tell a copy from a conflict)."""
    out = set()
    for s in (v.signed for v in verified):
        msg, state = s.message, states.get(s.key.device_id)
        if (
            state is not None
            and isinstance(msg, DATA_KINDS)
            and state.data.verdict(msg.seq) is Reason.REPLAY
        ):
            out.add((s.key.device_id, msg.seq))
    return out

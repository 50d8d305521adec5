"""Step-up that does something: the I/O around the pure `cloud_bridge.risk.stepup`, run inside
ingest's transaction (and the worker's expiry round).

    open     an event whose action waits for its user (`Plan.stepup` PENDING): a pending row
             and a signed `stepup` command to the user's primary device (their phone, else the
             event's own device) with a 16-byte challenge, the event and the deadline
    answer   the device's answer: a report with the command's seq as `cmd_seq` and `confirmed`
             or `declined` as `cmd_result`. A confirmation counts only when the bridge's own
             verdict on that fresh report is allow (its score under the step-up threshold, no
             tamper code, no signal): an impostor holding the phone cannot confirm by pressing
             a button. Nor when its swipes (the report's `strokes`) lie beyond the user's touch
             template (`cloud_bridge.risk.touch`), or too few came once the template exists,
             or the user is locked after repeated touch refusals: the held action is refused,
             `touch_mismatch` / `touch_missing` / `touch_locked` in its decision and a risk
             alert. Confirmed: the held event is planned again and its action runs; declined:
             its decision says `step_up_declined`.
    gate     a step-up about to open for a user locked by touch refusals: refused at once.
    expire   pending rows past their deadline: `step_up_expired` (nothing was placed, so
             nothing is left to release).

An emergency's deadline leaves its draw time to complete within its tier's response target
(`risk.stepup.deadline_ms`: illness 15 s, disaster 30 s, education 45 s, less 2 s).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace

from cloud_bridge import actions
from cloud_bridge.actions import Plan, StepUp
from cloud_bridge.config import BridgeConfig
from cloud_bridge.device_state import DeviceState
from cloud_bridge.judge import Category, RiskNote
from cloud_bridge.outputs import Outputs, Pending
from cloud_bridge.pool.commands import Emergency
from cloud_bridge.pool.policy import Emergencies
from cloud_bridge.risk import stepup, touch, user_signals
from cloud_bridge.risk.policy import SignalPolicy
from cloud_bridge.risk.user_signals import UserMemory
from cloud_bridge.risk.verdict import Level, Verdict
from cloud_bridge.store import ingest_repo, stepup_repo
from cloud_bridge.store.base import Transaction
from cloud_bridge.store.stepup_repo import StepUpRow
from protocol import cose
from protocol import messages as m
from protocol.errors import ProtocolError
from protocol.messages import STEPUP_CONFIRMED, STEPUP_DECLINED
from protocol.strokes import from_fixed

COMMAND = "stepup"
ANSWERS = frozenset({STEPUP_CONFIRMED, STEPUP_DECLINED})
EXPIRE_BATCH = 100


def _challenge() -> bytes:
    return os.urandom(stepup.CHALLENGE_BYTES)


@dataclass(frozen=True, slots=True)
class Resolved:
    """A step-up settled by an answer or the clock: its row, the held event, its new plan; for
    an answer, the owner's risk memory after it (None: unchanged) and its risk notes."""

    row: StepUpRow
    event: m.Trigger
    plan: Plan
    memory: UserMemory | None = None
    notes: tuple[Pending, ...] = ()


class StepUps:
    def __init__(
        self,
        out: Outputs,
        cfg: BridgeConfig,
        emergencies: Emergencies,
        signals: SignalPolicy,
        challenge: Callable[[], bytes] = _challenge,
    ) -> None:
        self.out = out
        self.cfg = cfg
        self.emergencies = emergencies
        self.signals = signals
        self.challenge = challenge

    def open(
        self, tx: Transaction, state: DeviceState, event: m.Trigger, received_ms: int
    ) -> Pending:
        """A pending step-up for `event` and the command that asks the user (to publish)."""
        primary = stepup_repo.primary_device(tx, state.user) or state.device_id
        body = event.body
        emergency = Emergency(body.emergency) if isinstance(body, m.EmergencyBody) else None
        pending = stepup.open_step_up(
            f"{event.sender}:{event.seq}", state.user, primary, self.challenge(), received_ms,
            emergency, self.emergencies, self.cfg.step_up_ttl_s * 1000,
        )  # fmt: skip
        args: dict[str, int | str | bytes | bool] = {
            "challenge": pending.challenge,
            "event": pending.event,
            "expires_ms": pending.deadline_ms,
        }
        command = self.out.command(tx, state.fleet, primary, COMMAND, args)
        row = StepUpRow(pending, event.sender, event.seq, state.fleet, command.seq)
        stepup_repo.insert(tx, [row])
        return command

    def answer(
        self,
        tx: Transaction,
        state: DeviceState,
        report: m.Report,
        fresh_ok: bool,
        now_ms: int,
        users: Mapping[str, UserMemory],
        loaded: Collection[str],
    ) -> Resolved | None:
        """The step-up this report answers, settled (None: it answers none, or it is ignored:
        an untrusted session leaves the step-up pending until its deadline, and so does an
        owner whose risk memory the batch did not lock). A confirmation's strokes are judged
        against the owner's touch template (`users`: the batch's per-user memories of the
        `loaded` users); a confirmation that counts teaches the owner's habits its trigger and,
        with strokes, their template; a touch refusal counts towards the owner's lock."""
        if report.cmd_seq == 0 or report.cmd_result not in ANSWERS:
            return None
        row = stepup_repo.answered(tx, state.device_id, report.cmd_seq)
        if row is None:
            return None
        owner = row.pending.user
        if owner not in loaded:  # judged on a fresh memory, it would enrol anyone's swipes
            return None
        memory = users.get(owner, UserMemory())
        confirmed = report.cmd_result == STEPUP_CONFIRMED
        strokes = [from_fixed(s) for s in report.strokes] if confirmed else []
        bad = touch.implausible(strokes)
        if bad is not None:
            strokes = []  # no evidence: as if none came
        judged = touch.judge(memory.touch, strokes, self.signals.touch)
        reply = stepup.Reply(
            state.device_id, row.pending.challenge, confirmed, fresh_ok, judged.evidence
        )
        step = stepup.on_reply(row.pending, reply, now_ms)
        if step.effect is stepup.Effect.NONE:
            return None
        status = step.state.status
        stepup_repo.settle(tx, row.pending.event, status)
        resolved = self._resolved(tx, row, status)
        if resolved is None:
            return None
        notes: list[Pending] = []
        if bad is not None:
            detail = f"step-up {row.pending.event}: strokes dropped, {bad}"
            note = RiskNote(Category.ALERT, touch.TOUCH_IMPLAUSIBLE, detail, report.seq)
            notes.append(self.out.risk(tx, state.fleet, state.device_id, note))
            verdict = resolved.plan.verdict
            plan = replace(
                resolved.plan,
                verdict=replace(verdict, reasons=(*verdict.reasons, touch.TOUCH_IMPLAUSIBLE)),
            )
            resolved = replace(resolved, plan=plan)
        after = None
        if status is stepup.Status.CONFIRMED:  # the owner vouched for the held trigger
            learnt = user_signals.confirmed(
                memory, user_signals.event_of(resolved.event), self.signals
            )
            after = replace(
                learnt, touch=touch.learn(memory.touch, strokes, judged, self.signals.touch)
            )
        elif StepUp(status.value) in actions.TOUCH_REFUSED:
            counted = touch.learn(memory.touch, strokes, judged, self.signals.touch)
            after = replace(memory, touch=counted)
            detail = _refusal_detail(row.pending.event, judged, counted, self.signals.touch)
            note = RiskNote(Category.ALERT, status.value, detail, report.seq)
            notes.append(self.out.risk(tx, state.fleet, state.device_id, note))
        return replace(resolved, memory=after, notes=tuple(notes))

    def gate(self, plan: Plan, memory: UserMemory) -> Plan:
        """An event's plan with the user's touch lock applied: a step-up about to open for a
        user whose touch refusals reached `touch_max_refusals` is refused at once
        (`touch_locked`), without asking their phone, until an operator resets the count."""
        if plan.stepup is not StepUp.PENDING or not touch.locked(memory.touch, self.signals.touch):
            return plan
        reasons = (*plan.verdict.reasons, touch.TOUCH_LOCKED)
        return replace(
            plan, stepup=StepUp.TOUCH_LOCKED, verdict=replace(plan.verdict, reasons=reasons)
        )

    def expire(self, tx: Transaction, now_ms: int) -> list[Resolved]:
        """Every pending step-up past its deadline, settled as expired."""
        out = []
        for row in stepup_repo.due(tx, now_ms, EXPIRE_BATCH):
            step = stepup.on_tick(row.pending, now_ms)
            if step.effect is not stepup.Effect.DROP:
                continue
            stepup_repo.settle(tx, row.pending.event, step.state.status)
            resolved = self._resolved(tx, row, step.state.status)
            if resolved is not None:
                out.append(resolved)
        return out

    def _resolved(self, tx: Transaction, row: StepUpRow, status: stepup.Status) -> Resolved | None:
        """The held event planned again with the step-up's outcome (None when the logged event
        is gone: pruned by retention)."""
        key = (row.device_id, row.seq)
        envelope = ingest_repo.stored_envelopes(tx, {key}).get(key)
        if envelope is None:
            return None
        try:
            event = m.decode(cose.peek_payload(envelope))
        except ProtocolError:
            return None
        if not isinstance(event, m.Trigger):
            return None
        outcome = StepUp(status.value)
        verdict = Verdict(Level.STEP_UP, (outcome.result,), 0)
        return Resolved(
            row, event, actions.plan(event, row.pending.user, verdict, self.cfg, outcome)
        )


def _refusal_detail(
    event: str, judged: touch.Judged, after: touch.Memory, policy: touch.Policy
) -> str:
    """The alert's words for a touch refusal (the distance when judged, the count towards the
    lock)."""
    if judged.evidence is touch.Evidence.MISMATCH:
        why = (
            f"strokes at scaled Manhattan distance {judged.distance or 0.0:.1f} from the "
            f"template, limit {policy.limit:.1f}"
        )
    elif judged.evidence is touch.Evidence.MISSING:
        why = f"fewer than {policy.min_strokes} plausible strokes once the template exists"
    else:
        why = "the user's step-ups are locked"
    count = f"; touch refusals in a row {after.refusals}"
    if touch.locked(after, policy):
        count += " (locked: cloud-bridge touch reset)"
    return f"step-up {event}: {why}{count}"

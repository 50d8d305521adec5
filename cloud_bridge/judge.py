"""The ingest judge: what one verified device message does, as a value. Pure: no broker, no
database, no clock; `cloud_bridge.ingest` reads the inputs, runs the effects and writes.

Inputs of `judge`:
    state       the device's `DeviceState` as the batch left it (None: no such device row)
    signed      the verified message (`Signed`: topic, registry key, message, envelope)
    key_status  the signing key's status, read in the batch's transaction
    stored      the envelope already logged under a reused data sequence number, if any
    rules       thresholds and configuration (`Rules`)
    user        what the per-user signals remember of the device's user (None: not read for
                this message: it has neither a location nor a trigger, so they have nothing)

Output: a `Judgement` with the device's next state (the same state when refused, so a refusal
changes nothing; a seq conflict, refused yet acted on, only moves the risk streak), at most one
`Rejection` (reason code, detail, `RejectionKind`), the user's next risk memory, the rows to log
(`event` or `session_event`), the pool `Plan` of a data event, the risk notes to publish, and the
requests only the registry can carry out (`rotation`, `retire_older`). After the pool commands ran,
`decision_result` and `newest_states` turn their outcomes into the published decision and pool
states.

Where each rule lives:
    key, sender, topic and channel checks        `_check` here
    replay windows (data, session), acks          `protocol.replay.ReplayWindow`, `_data`/`_session`
    seq conflict (same number, other content)     `_data` here: RejectionKind.SEQ_CONFLICT
    boot regression                               `_session` here
    the server's score of a report, tamper codes  `cloud_bridge.risk.server_score`, `_scored` here
    clock, clone, drift, re-centring              `cloud_bridge.risk.signals`, `_signals` here
    travel, sequence (per user, any device)       `cloud_bridge.risk.user_signals`, `_user` here
    allow / step_up / hold / freeze, streaks      `cloud_bridge.risk.verdict.judge`
    event -> pool commands (freeze, hold, ...)    `cloud_bridge.actions.plan`
    which refusals are stored and published       `Rejection.recorded` here; budget: `refusals`
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from cloud_bridge import actions
from cloud_bridge.config import BridgeConfig
from cloud_bridge.device_state import ACTIVE, RETIRED, DeviceState
from cloud_bridge.pool.errors import InvalidApplicant, ScorecardError
from cloud_bridge.pool.results import Result
from cloud_bridge.pool.scorecard import Scorecard, load_scorecard
from cloud_bridge.pool.service import Outcome
from cloud_bridge.risk import setup as risk_setup
from cloud_bridge.risk import signals, user_signals
from cloud_bridge.risk.fingerprint import IdentityScales
from cloud_bridge.risk.server_score import ServerScorer
from cloud_bridge.risk.user_signals import UserMemory
from cloud_bridge.risk.verdict import (
    NO_EVIDENCE,
    Evidence,
    Level,
    Scored,
    Signal,
    Thresholds,
    Verdict,
)
from cloud_bridge.risk.verdict import judge as risk_verdict
from cloud_bridge.store.ingest_repo import LogRow
from cloud_bridge.store.registry_repo import DeviceKey
from protocol import cose, topics
from protocol import messages as m
from protocol.errors import ProtocolError, Reason
from protocol.names import PHONE_KIND
from protocol.topics import Channel

log = logging.getLogger(__name__)

CHANNEL_KIND: Mapping[Channel, type[m.Message]] = {
    Channel.REPORT: m.Report,
    Channel.TRIGGER: m.Trigger,
    Channel.BIRTH: m.Birth,
    Channel.DEATH: m.Death,
    Channel.ENROLL: m.Enrollment,
    Channel.APPLICATION: m.Application,
}
DATA_KINDS = (m.Report, m.Trigger, m.Application)  # what the event log keeps, the pool acts on
DataEvent = m.Report | m.Trigger | m.Application
NOT_RUN = "internal_error"
"""The result of a decision whose pool commands were not run (the fallback after an error)."""


class RejectionKind(enum.Enum):
    REFUSED = "refused"  # recorded, published on the device's risk topic, counted
    DUPLICATE = "duplicate"  # a number seen before, same content: normal after a reconnect
    SEQ_CONFLICT = "seq_conflict"  # a number seen before, other content: refused AND acted on


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why one message is refused. `device` is the id the topic names (possibly forged), or
    None when the topic did not parse."""

    reason: Reason
    detail: str
    kind: RejectionKind = RejectionKind.REFUSED
    device: str | None = None

    @property
    def recorded(self) -> bool:
        """Stored in `rejections` and published (duplicates are only counted)."""
        return self.kind is not RejectionKind.DUPLICATE

    @classmethod
    def of(cls, exc: ProtocolError, device: str | None = None) -> Rejection:
        return cls(exc.reason, exc.detail, RejectionKind.REFUSED, device)


class Category(enum.StrEnum):
    ALERT = "alert"  # a risk signal about an accepted (or conflicting) message
    REJECTION = "rejection"  # a refused message


@dataclass(frozen=True, slots=True)
class RiskNote:
    """A note for the device's risk topic."""

    category: Category
    reason: str
    detail: str = ""
    device_seq: int = 0
    risk_pm: int = 0


@dataclass(frozen=True, slots=True)
class Signed:
    """A message whose signature checked out against a registry key."""

    topic: str  # as received
    where: topics.Topic  # parsed
    key: DeviceKey
    message: m.Message
    payload: bytes  # the signed payload (what a reused number's content is compared on)
    envelope: bytes  # as received, for the logs
    received_ms: int


@dataclass(frozen=True, slots=True)
class Rules:
    """Thresholds, configuration and the model the bridge scores reports with (deterministic:
    the same report and baseline always give the same score)."""

    thresholds: Thresholds
    cfg: BridgeConfig
    scorer: ServerScorer | None = None  # None: no report is scored (every event `unscored`)
    scales: IdentityScales | None = None  # None: no fingerprint distance (no drift, mismatch)
    scorecard: Scorecard | None = None  # None: applications are refused (`bad_field`)

    @classmethod
    def of(cls, cfg: BridgeConfig) -> Rules:
        """The rules of bridge.toml: loads the model, its calibration file and the applicant
        scorecard (models/scorecard-v1.json, as `cloud-bridge pool apply` by default; without
        it the bridge runs and refuses applications, saying why)."""
        risk = risk_setup.load(cfg)
        try:
            card: Scorecard | None = load_scorecard()
        except ScorecardError as exc:
            log.warning("applications will be refused: %s", exc)
            card = None
        return cls(risk.thresholds, cfg, risk.scorer, risk.calibration.identity_scales, card)


@dataclass(frozen=True, slots=True)
class Judgement:
    state: DeviceState | None  # the device's next state
    rejection: Rejection | None = None
    event: LogRow | None = None  # for the event log
    session_event: LogRow | None = None  # for the session log
    plan: actions.Plan | None = None  # a data event's pool commands; decided after they run
    notes: tuple[RiskNote, ...] = ()
    rotation: m.Enrollment | None = None  # a key rotation for the registry to register
    retire_older: bool = False  # the key is a rotated one: its device's older keys retire
    touched: bool = False  # write the device row back
    user_memory: UserMemory | None = None  # the user's next risk memory (None: unchanged)
    ack: bool = False  # publish the data window's edge after the commit


def judge(
    state: DeviceState | None,
    signed: Signed,
    key_status: str,
    stored: bytes | None,
    rules: Rules,
    user: UserMemory | None = None,
) -> Judgement:
    """What `signed` does to its device; see the module docstring."""
    refusal = _check(state, signed, key_status)
    if refusal is not None or state is None:
        return Judgement(state, refusal)
    msg = signed.message
    if isinstance(msg, DATA_KINDS):
        return _data(state, signed, msg, stored, rules, user)
    if isinstance(msg, m.Enrollment):
        return Judgement(state, rotation=msg, touched=True)
    return _session(state, signed, msg)


def _check(state: DeviceState | None, signed: Signed, key_status: str) -> Rejection | None:
    msg, where, key = signed.message, signed.where, signed.key
    device = where.device
    if key_status == RETIRED and state is not None and state.status == ACTIVE:
        detail = f"key {key.kid.hex()} was rotated out; the device signs with a newer one"
        return Rejection(Reason.RETIRED_KEY, detail, device=device)
    if key_status != ACTIVE or state is None or state.status != ACTIVE:
        return Rejection(Reason.REVOKED_KEY, f"key {key.kid.hex()} is not active", device=device)
    if msg.sender != key.device_id:
        detail = f"signed sender {msg.sender} is not {key.device_id}"
        return Rejection(Reason.SENDER_MISMATCH, detail, device=device)
    if where.device != msg.sender or where.fleet != state.fleet:
        detail = f"{signed.topic} is not {msg.sender}'s"
        return Rejection(Reason.TOPIC_MISMATCH, detail, device=device)
    if not isinstance(msg, CHANNEL_KIND[where.channel]):
        detail = f"{type(msg).__name__} on the {where.channel} channel"
        return Rejection(Reason.TOPIC_MISMATCH, detail, device=device)
    return None


def _window_refusal(reason: Reason, seq: int, device: str) -> Rejection:
    kind = RejectionKind.DUPLICATE if reason is Reason.REPLAY else RejectionKind.REFUSED
    return Rejection(reason, f"sequence {seq}", kind, device)


def _data(
    state: DeviceState,
    signed: Signed,
    msg: DataEvent,
    stored: bytes | None,
    rules: Rules,
    user: UserMemory | None = None,
) -> Judgement:
    device = state.device_id
    reason = state.data.verdict(msg.seq)
    if (
        reason is Reason.REPLAY
        and stored is not None
        and cose.peek_payload(stored) != signed.payload
    ):
        # The same number with other content: two boards share this key. Refused, kept as
        # evidence, and acted on: the verdict freezes the pool.
        scored = _scored(state, msg, rules)
        verdict, plan, notes = _assess(state, msg, scored, frozenset({Signal.SEQ_CONFLICT}), rules)
        detail = f"{Signal.SEQ_CONFLICT.value}: sequence {msg.seq} with other content"
        conflict = Rejection(Reason.REPLAY, detail, RejectionKind.SEQ_CONFLICT, device)
        return Judgement(
            state.after_event(state.data, verdict.streak, state.risk_q, state.risk_tamper),
            conflict, plan=plan, notes=notes, touched=True, ack=True,
        )  # fmt: skip
    if reason is not None:
        return Judgement(state, _window_refusal(reason, msg.seq, device), touched=True, ack=True)
    refusal = _application_refusal(state, msg, rules) if isinstance(msg, m.Application) else None
    if refusal is not None:
        # Refused, yet its number is used up and acked: resending it would be refused again.
        after = state.after_event(
            state.data.accept(msg.seq), state.streak, state.risk_q, state.risk_tamper
        )
        return Judgement(after, refusal, touched=True, ack=True)
    scored = _scored(state, msg, rules)
    evidence, memory = _signals(state, signed, msg, scored, rules)
    policy = rules.thresholds.signals
    seq_event = user_signals.event_of(msg) if isinstance(msg, m.Trigger) else None
    if user is not None and not isinstance(msg, m.Application):
        # the per-user signals: travel across devices, the trigger sequence (an application
        # carries no location and is no trigger)
        fix = signals.fix_of(msg.location, msg.ts_ms, msg.sender)
        found = user_signals.observe(user, fix, seq_event, policy)
        evidence = replace(
            evidence,
            codes=(*evidence.codes, *found.evidence),
            points=evidence.points + found.points,
        )
        user = found.memory
    verdict, plan, notes = _assess(state, msg, scored, frozenset(), rules, evidence)
    if user is not None and seq_event is not None and verdict.level is Level.ALLOW:
        user = user_signals.learn(user, seq_event, policy)  # a thief's triggers are not learnt
    event = LogRow(device, msg.seq, int(msg.KIND), signed.received_ms, signed.envelope)
    return Judgement(
        state.after_event(
            state.data.accept(msg.seq), verdict.streak, scored.output_q, scored.tamper, memory
        )
        if scored.fresh
        else state.after_event(
            state.data.accept(msg.seq), verdict.streak, state.risk_q, state.risk_tamper, memory
        ),
        event=event,
        plan=plan,
        notes=notes,
        retire_older=signed.key.generation > 1,
        touched=True,
        ack=True,
        user_memory=user,
    )


def _application_refusal(state: DeviceState, msg: m.Application, rules: Rules) -> Rejection | None:
    """Only a phone applies (for its user), with attributes the scorecard knows."""
    if state.kind != PHONE_KIND:
        detail = f"a device of kind {state.kind!r} may not apply; the user's enrolled phone does"
        return Rejection(Reason.WRONG_DEVICE_KIND, detail, device=state.device_id)
    if rules.scorecard is None:
        return Rejection(Reason.BAD_FIELD, "no scorecard: applications are not taken here",
                         device=state.device_id)  # fmt: skip
    try:
        rules.scorecard.score(msg.applicant)
    except InvalidApplicant as exc:
        return Rejection(Reason.BAD_FIELD, str(exc)[:256], device=state.device_id)
    return None


def _scored(state: DeviceState, msg: DataEvent, rules: Rules) -> Scored:
    """The server's score of a data event: a report is scored from its fingerprint and the
    enrolled baseline (and its own claims checked); a trigger carries no fingerprint, so it is
    judged on its device's newest scored report, never on the risk_pm it states (an
    application likewise)."""
    if not isinstance(msg, m.Report):
        return Scored(state.risk_q, state.risk_tamper, fresh=False)
    if rules.scorer is None:
        return Scored(None)
    s = rules.scorer.score(
        msg.model_id,
        msg.model_sha256,
        msg.fingerprint,
        msg.features,
        msg.risk_pm,
        state.baseline,
    )
    return Scored(s.output_q, tuple(t.value for t in s.tamper))


def _signals(
    state: DeviceState, signed: Signed, msg: DataEvent, scored: Scored, rules: Rules
) -> tuple[Evidence, signals.Memory]:
    """The per-device signals of a new data event (`cloud_bridge.risk.signals`): their
    evidence for the verdict (with the device's re-centring shift), and the memory to keep.
    An application carries no clock, location or fingerprint: nothing to judge or remember."""
    if isinstance(msg, m.Application):
        return NO_EVIDENCE, state.risk_memory
    policy = rules.thresholds.signals
    seen = signals.seen_of(msg, signed.received_ms)
    kt = rules.thresholds.kinds.get(state.kind)
    done = signals.assess(state.risk_memory, seen, state.baseline, rules.scales, kt, scored, policy)
    return done.evidence, done.memory


def _assess(
    state: DeviceState,
    msg: DataEvent,
    scored: Scored,
    anomalies: frozenset[Signal],
    rules: Rules,
    evidence: Evidence = NO_EVIDENCE,
) -> tuple[Verdict, actions.Plan, tuple[RiskNote, ...]]:
    """The risk verdict, the pool plan and the alerts of one data event."""
    verdict = risk_verdict(state.kind, scored, state.streak, anomalies, rules.thresholds, evidence)
    notes: list[RiskNote] = []
    signalled = any(rules.thresholds.signals.weight(c) for c in evidence.codes)
    if verdict.level is Level.FREEZE or anomalies or (scored.fresh and scored.tamper) or signalled:
        # The note's reason is one code (the first: a clone signal or a tamper code); the
        # detail lists them all with the server's score beside the device's own.
        detail = (
            f"verdict {verdict.level.value}; reasons {','.join(verdict.reasons)}; "
            f"server q {scored.output_q}; device risk_pm {msg.risk_pm}"
        )
        reason = verdict.reasons[0] if verdict.reasons else verdict.level.value
        notes.append(RiskNote(Category.ALERT, reason, detail, msg.seq, msg.risk_pm))
    try:
        plan = actions.plan(msg, state.user, verdict, rules.cfg)
    except Exception:  # a bug in the mapping must not block the event: store, act not
        log.exception("no pool action for %s seq %d", state.device_id, msg.seq)
        notes.append(RiskNote(Category.ALERT, NOT_RUN, "no pool action", msg.seq, msg.risk_pm))
        plan = actions.failed(verdict)
    return verdict, plan, tuple(notes)


def _session(state: DeviceState, signed: Signed, msg: m.Message) -> Judgement:
    reason = state.session.verdict(msg.seq)
    if reason is not None:
        return Judgement(state, _window_refusal(reason, msg.seq, state.device_id), touched=True)
    row = LogRow(state.device_id, msg.seq, int(msg.KIND), signed.received_ms, signed.envelope)
    after = replace(state, session=state.session.accept(msg.seq))
    if isinstance(msg, m.Birth):
        notes: tuple[RiskNote, ...] = ()
        if msg.boot < state.last_boot:
            detail = f"boot {msg.boot} after {state.last_boot}"
            notes = (RiskNote(Category.ALERT, Signal.BOOT_REGRESSION.value, detail),)
        after = replace(
            after,
            data=after.data.settle_below(msg.resume_seq),
            online=True,
            last_boot=max(state.last_boot, msg.boot),
        )
        return Judgement(after, session_event=row, notes=notes, touched=True, ack=True)
    if isinstance(msg, m.Death):
        after = replace(after, online=False)
    return Judgement(after, session_event=row, touched=True)


# ---- after the pool commands ran ---------------------------------------------------------------


def decision_result(plan: actions.Plan, outcomes: Mapping[str, Outcome], acted: bool) -> str:
    """The `result` of an event's published decision: its own command's result, else its
    freeze's, `ok` when it had none, NOT_RUN when its commands were not run; a trigger whose
    action the risk verdict held back says so (`risk_hold`, `risk_freeze`); an application
    its approval's outcome (`actions.application_result`)."""
    if not acted and (plan.commands or plan.action is actions.Action.APPLY):
        return NOT_RUN  # an application is decided only when the commands run
    if plan.stepup in actions.STEP_UP_STOPPED:
        return plan.stepup.result
    if actions.held(plan):
        return actions.held_result(plan.verdict.level)
    if plan.approval is not None:
        own = outcomes.get(plan.command.key) if plan.command is not None else None
        return actions.application_result(plan, own)
    ran = [outcomes.get(c.key) for c in (plan.command, plan.freeze) if c is not None]
    main = next((o for o in ran if o is not None), None)
    return main.result.value if main is not None else Result.OK.value


@dataclass(frozen=True, slots=True)
class PoolUpdate:
    fleet: str
    outcome: Outcome  # its view is the pool's newest in the batch


def newest_states(ran: Iterable[tuple[str, Outcome]]) -> list[PoolUpdate]:
    """One pool state per user to publish: the newest view among the (fleet, outcome) of the
    batch's commands, in the order the users first appear."""
    newest: dict[str, PoolUpdate] = {}
    for fleet, outcome in ran:
        view = outcome.view
        if view is None:
            continue
        prev = newest.get(outcome.user)
        if prev is None or (prev.outcome.view and view.version >= prev.outcome.view.version):
            newest[outcome.user] = PoolUpdate(fleet, outcome)
    return list(newest.values())

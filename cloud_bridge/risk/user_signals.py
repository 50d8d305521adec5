"""The per-user risk signals: what a person's devices do together, judged across all of them.

Two signals belong to the user, not to one device (issue 13, items 6 and 7):

    impossible_travel     a located report or trigger against the user's last located event,
                          from any of their devices (`cloud_bridge.risk.travel`)
    implausible_sequence  a trigger against the user's own Markov model of their trigger
                          sequence (kind, amount band, hour, device), a CUSUM of its surprise
                          (`cloud_bridge.risk.sequence`)

`UserMemory` is what the bridge keeps of each user (JSON in `user_risk.memory`, migration
011_user_risk; read and written by `cloud_bridge.store.ingest_repo`). The sequence model is
refitted from the user's latest `seq_window` allowed triggers whenever a trigger comes (a
deterministic function of that history, so only the history is kept), and judges once there are
`seq_min_events` of them. Only triggers the verdict allowed (`learn`) or the user confirmed on a
step-up (`confirmed`: learnt, and the accumulated evidence cleared: the owner has answered it)
become the user's habits; a thief's triggers, stepped up and never confirmed, do not. Without
the confirmations a user whose habits change would be flagged ever after: on the simulation of
`tools.eval_risk sequence` that took genuine triggers flagged from 0.6 % to 11 %. The memory
also keeps the user's touch template (the strokes of their counted step-up confirmations,
`cloud_bridge.risk.touch`; key "touch" of the JSON, absent in memories written before it) and
their touch refusals in a row (key "touch_refusals", absent when 0). A stored touch part that
cannot be read resets the touch part only (`read` says so): the other signals keep what they
learnt. Pure: values in, values out.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field, replace

from cloud_bridge.risk import sequence as sq
from cloud_bridge.risk import touch, travel
from cloud_bridge.risk.policy import SignalPolicy
from protocol import messages as m
from protocol.strokes import Strokes, from_fixed, to_fixed

IMPOSSIBLE_TRAVEL = "impossible_travel"
IMPLAUSIBLE_SEQUENCE = "implausible_sequence"
STROKES = Strokes()
PRIOR = sq.uniform()
"""The population prior of every user's model: flat (no population model is fitted live)."""


@dataclass(frozen=True, slots=True)
class UserMemory:
    travel: travel.State = field(default_factory=travel.State)
    history: tuple[sq.Event, ...] = ()  # the latest allowed triggers, oldest first
    sequence: sq.State = field(default_factory=sq.State)
    touch: touch.Memory = field(default_factory=touch.Memory)  # the step-up touch template


@dataclass(frozen=True, slots=True)
class UserObserved:
    memory: UserMemory
    evidence: tuple[str, ...]
    points: int


def event_of(msg: m.Trigger) -> sq.Event:
    """A trigger as a sequence symbol: its kind, the money it asks for (restock cost,
    emergency amount, turnover; 0 for the others), its UTC hour and its device."""
    body = msg.body
    amount = 0
    if isinstance(body, m.RestockBody):
        amount = body.est_cost_fen
    elif isinstance(body, m.EmergencyBody):
        amount = body.amount_fen
    elif isinstance(body, m.TurnoverBody):
        amount = body.turnover_fen
    hour = dt.datetime.fromtimestamp(msg.ts_ms / 1000, dt.UTC).hour
    return sq.Event(msg.trigger, amount, hour, msg.sender)


def observe(
    memory: UserMemory, fix: travel.Fix | None, event: sq.Event | None, policy: SignalPolicy
) -> UserObserved:
    """The user's evidence on one new data event (its location `fix`, and `event` when it is a
    trigger) and the memory after it (the history is `learn`t after the verdict)."""
    codes: list[str] = []
    places = memory.travel
    if fix is not None:
        step = travel.step(places, fix, policy.travel)
        places = step.state
        if step.leg is not None and step.leg.impossible:
            codes.append(IMPOSSIBLE_TRAVEL)
    state = memory.sequence
    if event is not None:
        if len(memory.history) >= policy.seq_min_events:
            model = sq.fit(memory.history, PRIOR)
            judged = sq.step(state, model, event, policy.sequence)
            state = judged.state
            if judged.flagged:
                codes.append(IMPLAUSIBLE_SEQUENCE)
        else:
            state = sq.State(event.kind, 0.0)
    after = replace(memory, travel=places, sequence=state)
    return UserObserved(after, tuple(codes), sum(policy.weight(c) for c in codes))


def learn(memory: UserMemory, event: sq.Event, policy: SignalPolicy) -> UserMemory:
    """The memory with an allowed trigger added to the history the model is fitted on."""
    history = (*memory.history, event)[-policy.seq_window :]
    return replace(memory, history=history)


def confirmed(memory: UserMemory, event: sq.Event, policy: SignalPolicy) -> UserMemory:
    """The memory after the user confirmed a stepped-up trigger on their primary device."""
    learnt = learn(memory, event, policy)
    return replace(learnt, sequence=replace(learnt.sequence, evidence=0.0))


# ---- persistence (the store keeps the text) ----------------------------------------------------


def to_json(memory: UserMemory) -> str:
    fix = memory.travel.last
    doc: dict[str, object] = {
        "v": 1,
        "fix": None
        if fix is None
        else [fix.ts_ms, fix.lat_e7, fix.lon_e7, fix.accuracy_m, fix.source, fix.device],
        "hist": [[e.kind, e.amount_fen, e.hour, e.device] for e in memory.history],
        "seq": [memory.sequence.prev_kind, memory.sequence.evidence],
    }
    if memory.touch.confirmations:  # strokes as they travelled (fixed point): exact and short
        doc["touch"] = [[to_fixed(f) for f in c] for c in memory.touch.confirmations]
    if memory.touch.refusals:
        doc["touch_refusals"] = memory.touch.refusals
    return json.dumps(doc, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Read:
    """A stored memory as read, and what of it could not be (None: all of it was read)."""

    memory: UserMemory
    problem: str | None = None


_UNREADABLE = (ValueError, TypeError, KeyError, IndexError)  # TravelError, SequenceError: Value


def read(text: str) -> Read:
    """A stored memory. An empty text is a fresh one; an unreadable one too (the signals
    relearn); an unreadable touch part is a fresh touch part, the rest kept."""
    if not text:
        return Read(UserMemory())
    try:
        doc = json.loads(text)
        fix = doc["fix"]
        prev, evidence = doc["seq"]
        memory = UserMemory(
            travel.State(None if fix is None else travel.Fix(*fix)),
            tuple(sq.Event(str(k), int(a), int(h), str(d)) for k, a, h, d in doc["hist"]),
            sq.State(str(prev), float(evidence)),
        )
    except _UNREADABLE as exc:
        return Read(UserMemory(), f"unreadable memory, all signals reset: {exc!r}")
    try:
        return Read(replace(memory, touch=_touch(doc)))
    except _UNREADABLE as exc:
        return Read(memory, f"unreadable touch template, touch reset: {exc!r}")


def _touch(doc: dict[str, object]) -> touch.Memory:
    confirmations = doc.get("touch", [])
    refusals = doc.get("touch_refusals", 0)
    if not isinstance(confirmations, list) or type(refusals) is not int or refusals < 0:
        raise ValueError("touch must be a list and touch_refusals a count")
    return touch.Memory(  # checked as on the wire: 16 integers a stroke
        tuple(tuple(map(from_fixed, STROKES.check(c))) for c in confirmations), refusals
    )


def from_json(text: str) -> UserMemory:
    """A stored memory (`read`, without saying what could not be read)."""
    return read(text).memory

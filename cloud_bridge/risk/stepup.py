"""A pending step-up: an event's pool action held until the user confirms on a primary device.
Pure: a frozen state and a function of events; the clock and the challenge are passed in.

    open_step_up(...)            PENDING, with its deadline and the challenge sent to the device
    on_reply(p, reply, now_ms)   the device's signed answer: CONFIRMED (run the held action),
                                 DECLINED, or ignored with a reason (wrong device, wrong
                                 challenge, no longer pending) leaving the state unchanged
    on_tick(p, now_ms)           EXPIRED once the deadline passed without a confirmation

A confirmation counts only if the answering report's own server score is under the kind's
step-up threshold and carries no tamper code (`fresh_ok`): an impostor holding the phone
cannot confirm by pressing a button, the session it answers with is scored like any other. Nor
if its touch evidence refuses it (`touch`, cloud_bridge.risk.touch): swipes that mismatch the
user's template, too few swipes once it exists, or a user locked after repeated refusals settle
the step-up as TOUCH_MISMATCH, TOUCH_MISSING or TOUCH_LOCKED and the held action is refused.

Deadlines: an emergency must still complete within its tier's response time (policy
`[emergency] <kind>_response_ms`: illness 15 s, disaster 30 s, education 45 s), so its step-up
expires `EMERGENCY_MARGIN_MS` before that, leaving the draw itself time to run; any other action
waits `ttl_ms` (configuration).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from cloud_bridge.pool.commands import Emergency
from cloud_bridge.pool.policy import Emergencies
from cloud_bridge.risk.touch import TOUCH_LOCKED, TOUCH_MISMATCH, TOUCH_MISSING, Evidence

CHALLENGE_BYTES = 16
EMERGENCY_MARGIN_MS = 2_000
"""Time left for the confirmed draw itself (ingest, pool, publish) within the tier's target."""


class Status(enum.StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    DECLINED = "declined"
    EXPIRED = "expired"
    TOUCH_MISMATCH = TOUCH_MISMATCH  # confirmed, but the swipes were not the user's
    TOUCH_MISSING = TOUCH_MISSING  # confirmed without swipes, once the user's template exists
    TOUCH_LOCKED = TOUCH_LOCKED  # confirmed by a user locked after repeated touch refusals


_TOUCH_REFUSED = {
    Evidence.MISMATCH: Status.TOUCH_MISMATCH,
    Evidence.MISSING: Status.TOUCH_MISSING,
    Evidence.LOCKED: Status.TOUCH_LOCKED,
}


class Effect(enum.StrEnum):
    """What the caller does after a transition."""

    NONE = "none"  # nothing changed (an ignored reply, a tick before the deadline)
    RUN = "run"  # run the held pool command; publish its decision (reason step_up_confirmed)
    DROP = "drop"  # publish the event's decision: step_up_declined / step_up_expired /
    # touch_mismatch / touch_missing / touch_locked; count it


class Ignored(enum.StrEnum):
    """Why a reply did not change a pending step-up."""

    WRONG_DEVICE = "wrong_device"
    WRONG_CHALLENGE = "wrong_challenge"
    NOT_PENDING = "not_pending"
    UNTRUSTED_SESSION = "untrusted_session"  # the answering session scored high or tampered


@dataclass(frozen=True, slots=True)
class PendingStepUp:
    event: str  # "device:seq" of the held event
    user: str
    primary: str  # the device asked to confirm
    challenge: bytes
    opened_ms: int
    deadline_ms: int
    status: Status = Status.PENDING

    def __post_init__(self) -> None:
        if len(self.challenge) != CHALLENGE_BYTES:
            raise ValueError(f"challenge must be {CHALLENGE_BYTES} bytes")
        if self.deadline_ms <= self.opened_ms:
            raise ValueError("deadline_ms must be after opened_ms")


@dataclass(frozen=True, slots=True)
class Reply:
    """A device's signed answer to a step-up command (a report with cmd_seq and cmd_result)."""

    device: str
    challenge: bytes
    confirmed: bool
    fresh_ok: bool  # the answering report's server score is under step-up, no tamper code
    touch: Evidence = Evidence.NONE  # what its strokes say against the user's template


@dataclass(frozen=True, slots=True)
class Step:
    state: PendingStepUp
    effect: Effect
    ignored: Ignored | None = None


def deadline_ms(
    received_ms: int, emergency: Emergency | None, policy: Emergencies, ttl_ms: int
) -> int:
    """When a step-up opened for an event received at `received_ms` expires."""
    if emergency is None:
        return received_ms + ttl_ms
    return received_ms + max(1, policy.response_ms(emergency) - EMERGENCY_MARGIN_MS)


def open_step_up(
    event: str,
    user: str,
    primary: str,
    challenge: bytes,
    received_ms: int,
    emergency: Emergency | None,
    policy: Emergencies,
    ttl_ms: int,
) -> PendingStepUp:
    return PendingStepUp(
        event, user, primary, challenge, received_ms,
        deadline_ms(received_ms, emergency, policy, ttl_ms),
    )  # fmt: skip


def on_reply(p: PendingStepUp, reply: Reply, now_ms: int) -> Step:
    if p.status is not Status.PENDING:
        return Step(p, Effect.NONE, Ignored.NOT_PENDING)
    if now_ms >= p.deadline_ms:
        return Step(replace(p, status=Status.EXPIRED), Effect.DROP)
    if reply.device != p.primary:
        return Step(p, Effect.NONE, Ignored.WRONG_DEVICE)
    if reply.challenge != p.challenge:
        return Step(p, Effect.NONE, Ignored.WRONG_CHALLENGE)
    if not reply.confirmed:
        return Step(replace(p, status=Status.DECLINED), Effect.DROP)
    if not reply.fresh_ok:
        return Step(p, Effect.NONE, Ignored.UNTRUSTED_SESSION)  # may still confirm in time
    refused = _TOUCH_REFUSED.get(reply.touch)
    if refused is not None:  # someone else's swipes, none at all, or a locked user
        return Step(replace(p, status=refused), Effect.DROP)
    return Step(replace(p, status=Status.CONFIRMED), Effect.RUN)


def on_tick(p: PendingStepUp, now_ms: int) -> Step:
    if p.status is Status.PENDING and now_ms >= p.deadline_ms:
        return Step(replace(p, status=Status.EXPIRED), Effect.DROP)
    return Step(p, Effect.NONE)

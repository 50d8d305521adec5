"""The ingest judge without broker or database: real signed envelopes, plain values in and out.

Refusals must leave the device state identical (the same object); a seq conflict is a refusal
that still acts; the replay windows accept each number at most once (against a plain model).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_bridge.actions import Action
from cloud_bridge.config import BridgeConfig
from cloud_bridge.device_state import DeviceState
from cloud_bridge.judge import (
    NOT_RUN,
    Category,
    RejectionKind,
    Rules,
    Signed,
    decision_result,
    judge,
    newest_states,
)
from cloud_bridge.pool.commands import Freeze, PlaceHold
from cloud_bridge.pool.results import Result
from cloud_bridge.pool.service import Outcome
from cloud_bridge.pool.state import Status
from cloud_bridge.pool.view import PoolView
from cloud_bridge.registry import refuse
from cloud_bridge.risk.verdict import Level
from cloud_bridge.store.registry_repo import DeviceKey
from protocol import cose, envelope, topics
from protocol import messages as m
from protocol.errors import ProtocolError, Reason
from protocol.replay import ReplayWindow
from protocol.topics import Channel

FLEET = "f1"
DEVICE = "dev-1"
SIGNER = nacl.signing.SigningKey(bytes(range(32)))
KEY = DeviceKey(cose.kid_for(SIGNER.verify_key), DEVICE, bytes(SIGNER.verify_key), 1, "active")
RULES = Rules.of(BridgeConfig(path=None, data_dir=Path("."), fleet=FLEET))
# A fridge whose newest report the server scored low: its triggers are allowed.
STATE = DeviceState(
    DEVICE, FLEET, "user-1", "active", ReplayWindow(), ReplayWindow(), 0, 3, False, "fridge",
    risk_q=-128,
)  # fmt: skip


def report(seq: int, risk_pm: int = 10, ts_ms: int = 1) -> m.Report:
    return m.Report(
        sender=DEVICE, seq=seq, boot=3, ts_ms=ts_ms, model_id="risk-v1",
        model_sha256=bytes(32), risk_pm=risk_pm, features=b"", mono_ms=1,
    )  # fmt: skip


def restock(seq: int, cost_fen: int = 12_300, risk_pm: int = 10) -> m.Trigger:
    body = m.RestockBody(item="rice", level_pct=5, threshold_pct=10, est_cost_fen=cost_fen)
    return m.Trigger(
        sender=DEVICE, seq=seq, boot=3, ts_ms=1, model_id="risk-v1", model_sha256=bytes(32),
        risk_pm=risk_pm, mono_ms=1, rule="restock", priority=1, body=body,
    )  # fmt: skip


def birth(seq: int, boot: int, resume_seq: int) -> m.Birth:
    return m.Birth(
        sender=DEVICE, seq=seq, boot=boot, ts_ms=1, agent_version="1", model_id="risk-v1",
        model_sha256=bytes(32), config_sha256=bytes(32), device_kind="ev", backlog=0,
        resume_seq=resume_seq,
    )  # fmt: skip


def death(seq: int) -> m.Death:
    return m.Death(sender=DEVICE, seq=seq, boot=3, ts_ms=1, reason="shutdown")


CHANNEL = {m.Report: Channel.REPORT, m.Trigger: Channel.TRIGGER, m.Birth: Channel.BIRTH}


def signed(msg: m.Message, *, key: DeviceKey = KEY, topic: str | None = None) -> Signed:
    data = envelope.seal(msg, SIGNER)
    name = topic or topics.device(FLEET, DEVICE, CHANNEL.get(type(msg), Channel.DEATH))
    return Signed(name, topics.parse(name), key, msg, cose.peek_payload(data), data, received_ms=5)


def seen(*seqs: int) -> DeviceState:
    window = ReplayWindow()
    for s in seqs:
        window = window.accept(s)
    return replace(STATE, data=window)


REFUSALS: list[tuple[str, DeviceState | None, Callable[[], Signed], str, Reason, RejectionKind]] = [
    ("key revoked", STATE, lambda: signed(report(1)), "revoked", Reason.REVOKED_KEY,
     RejectionKind.REFUSED),
    ("key retired", STATE, lambda: signed(report(1)), "retired", Reason.RETIRED_KEY,
     RejectionKind.REFUSED),
    ("key retired, device revoked", replace(STATE, status="revoked"), lambda: signed(report(1)),
     "retired", Reason.REVOKED_KEY, RejectionKind.REFUSED),
    ("no device row", None, lambda: signed(report(1)), "active", Reason.REVOKED_KEY,
     RejectionKind.REFUSED),
    ("device revoked", replace(STATE, status="revoked"), lambda: signed(report(1)), "active",
     Reason.REVOKED_KEY, RejectionKind.REFUSED),
    ("signed by another device's key", STATE,
     lambda: signed(report(1), key=replace(KEY, device_id="dev-2")), "active",
     Reason.SENDER_MISMATCH, RejectionKind.REFUSED),
    ("topic names another device", STATE,
     lambda: signed(report(1), topic=topics.device(FLEET, "dev-2", Channel.REPORT)), "active",
     Reason.TOPIC_MISMATCH, RejectionKind.REFUSED),
    ("topic of another fleet", STATE,
     lambda: signed(report(1), topic=topics.device("f2", DEVICE, Channel.REPORT)), "active",
     Reason.TOPIC_MISMATCH, RejectionKind.REFUSED),
    ("report on the trigger channel", STATE,
     lambda: signed(report(1), topic=topics.device(FLEET, DEVICE, Channel.TRIGGER)), "active",
     Reason.TOPIC_MISMATCH, RejectionKind.REFUSED),
    ("stale number", seen(100), lambda: signed(report(36)), "active", Reason.STALE,
     RejectionKind.REFUSED),
    ("duplicate, nothing logged", seen(7), lambda: signed(report(7)), "active", Reason.REPLAY,
     RejectionKind.DUPLICATE),
    ("session duplicate", replace(STATE, session=ReplayWindow().accept(2)),
     lambda: signed(death(2)), "active", Reason.REPLAY, RejectionKind.DUPLICATE),
]  # fmt: skip


@pytest.mark.parametrize(
    ("state", "make", "status", "reason", "kind"),
    [r[1:] for r in REFUSALS],
    ids=[r[0] for r in REFUSALS],
)
def test_judge__refusals_leave_the_state_unchanged(
    state: DeviceState | None,
    make: Callable[[], Signed],
    status: str,
    reason: Reason,
    kind: RejectionKind,
) -> None:
    j = judge(state, make(), status, None, RULES)
    assert j.rejection is not None
    assert (j.rejection.reason, j.rejection.kind) == (reason, kind)
    assert j.rejection.recorded is (kind is not RejectionKind.DUPLICATE)
    assert j.state is state
    assert j.event is None and j.session_event is None and j.plan is None
    assert j.notes == () and j.rotation is None and not j.retire_older


@pytest.mark.parametrize(
    ("status", "reason"),
    [("retired", Reason.RETIRED_KEY), ("revoked", Reason.REVOKED_KEY), ("active", None)],
)
def test_the_resolver_names_a_rotated_out_key_apart_from_a_revoked_one(
    status: str, reason: Reason | None
) -> None:
    # The ingest path asks `refuse` before the signature is checked: a message signed by a
    # rotated-out key is refused there, with its own reason.
    key = replace(KEY, status=status)
    if reason is None:
        assert refuse(key, key.kid) == SIGNER.verify_key
        return
    with pytest.raises(ProtocolError) as err:
        refuse(key, key.kid)
    assert err.value.reason is reason
    assert refuse(None, key.kid) is None  # unknown: the caller says unknown_device


def test_judge__a_duplicate_with_the_same_content_is_acked_again() -> None:
    first = signed(report(7))
    j = judge(seen(7), first, "active", first.envelope, RULES)
    assert j.rejection is not None and j.rejection.kind is RejectionKind.DUPLICATE
    assert j.ack and j.plan is None


def test_judge__a_reused_number_with_other_content_is_a_conflict_that_freezes() -> None:
    logged = signed(report(7, ts_ms=1)).envelope
    state = seen(7)
    j = judge(state, signed(report(7, ts_ms=2)), "active", logged, RULES)
    assert j.rejection is not None
    assert j.rejection.kind is RejectionKind.SEQ_CONFLICT
    assert j.rejection.reason is Reason.REPLAY and j.rejection.recorded
    assert j.state is not None and j.state.data == state.data  # the number stays taken
    assert j.event is None
    assert j.plan is not None and j.plan.verdict.level is Level.FREEZE
    assert isinstance(j.plan.freeze, Freeze) and j.plan.freeze.reason == "clone"
    assert j.plan.command is None
    assert [(n.category, n.reason) for n in j.notes] == [(Category.ALERT, "seq_conflict")]


def test_judge__an_accepted_report_is_logged_and_acked() -> None:
    s = signed(report(1))
    j = judge(STATE, s, "active", None, RULES)
    assert j.rejection is None
    assert j.state is not None and j.state.data.hi == 1 and j.state.data.contiguous == 1
    assert j.event is not None and (j.event.seq, j.event.envelope) == (1, s.envelope)
    assert j.plan is not None and j.plan.commands == () and j.plan.action is Action.NONE
    assert j.ack and j.touched and not j.retire_older
    assert STATE.data == ReplayWindow()  # the input is not changed


def test_judge__a_restock_trigger_places_a_hold() -> None:
    j = judge(STATE, signed(restock(4, cost_fen=12_300)), "active", None, RULES)
    assert j.plan is not None
    hold = j.plan.command
    assert isinstance(hold, PlaceHold)
    assert (hold.amount_fen, hold.key, hold.ttl_ms) == (12_300, "dev-1:4:hold", 900_000)
    assert (j.plan.action, j.plan.amount_fen, j.plan.freeze) == (Action.HOLD, 12_300, None)


def test_judge__a_trigger_after_a_high_server_score_holds_and_does_not_act() -> None:
    high = replace(STATE, risk_q=RULES.thresholds.kinds["fridge"].hold_q)
    j = judge(high, signed(restock(1, risk_pm=0)), "active", None, RULES)
    assert j.plan is not None and j.plan.verdict.level is Level.HOLD
    assert j.plan.commands == () and j.plan.verdict.reasons == ("score_hold",)
    assert j.state is not None and j.state.risk_q == high.risk_q  # a trigger keeps the score


def test_judge__a_rotated_key_retires_the_older_ones() -> None:
    j = judge(STATE, signed(report(1), key=replace(KEY, generation=2)), "active", None, RULES)
    assert j.rejection is None and j.retire_older


def test_judge__a_birth_settles_the_window_and_notes_a_boot_regression() -> None:
    state = seen(1, 2)
    j = judge(state, signed(birth(1, boot=2, resume_seq=10)), "active", None, RULES)
    assert j.rejection is None and j.ack
    assert j.state is not None
    assert j.state.data.contiguous == 9 and j.state.online and j.state.last_boot == 3
    assert j.session_event is not None and j.session_event.seq == 1
    assert [(n.category, n.reason, n.detail) for n in j.notes] == [
        (Category.ALERT, "boot_regression", "boot 2 after 3")
    ]


def test_judge__a_death_takes_the_device_offline() -> None:
    online = replace(STATE, online=True)
    j = judge(online, signed(death(1)), "active", None, RULES)
    assert j.state is not None and not j.state.online and not j.ack


def test_judge__an_enrollment_asks_the_registry_to_rotate() -> None:
    record = m.Enrollment(
        sender=DEVICE, seq=2, boot=3, ts_ms=1, fleet=FLEET, device_kind="ev",
        public_key=bytes(32), prev_kid=KEY.kid,
    )  # fmt: skip
    name = topics.device(FLEET, DEVICE, Channel.ENROLL)
    s = replace(signed(record, topic=name), where=topics.parse(name))
    j = judge(STATE, s, "active", None, RULES)
    assert j.rejection is None and j.rotation == record and j.state is STATE


def _outcome(key: str, result: Result, version: int = 1, user: str = "user-1") -> Outcome:
    view = PoolView(
        user=user, status=Status.OPEN, limit_fen=100, available_fen=100, outstanding_fen=0,
        held_fen=0, interest_fen=0, accrued_interest_fen=0, rate_bps=0, min_due_fen=0, due_ms=0,
        next_statement_ms=0, on_time_cycles=0, version=version, updated_ms=0,
    )  # fmt: skip
    return Outcome(user, key, "x", result, view)


def test_decision_result__prefers_the_events_own_command_over_its_freeze() -> None:
    frozen = judge(seen(7), signed(report(7, ts_ms=2)), "active", signed(report(7)).envelope, RULES)
    held = judge(STATE, signed(restock(4)), "active", None, RULES)
    plain = judge(STATE, signed(report(1)), "active", None, RULES)
    assert frozen.plan is not None and held.plan is not None and plain.plan is not None
    freeze_key = "dev-1:7:freeze"
    assert decision_result(frozen.plan, {freeze_key: _outcome(freeze_key, Result.ALREADY_FROZEN)},
                           True) == "already_frozen"  # fmt: skip
    hold = {"dev-1:4:hold": _outcome("dev-1:4:hold", Result.EXCEEDS_CREDIT)}
    assert decision_result(held.plan, hold, True) == "exceeds_credit"
    assert decision_result(held.plan, {}, False) == NOT_RUN
    assert decision_result(plain.plan, {}, False) == "ok"  # nothing to run: nothing failed


def test_newest_states__one_per_user_the_highest_version() -> None:
    ran = [
        ("f1", _outcome("a", Result.OK, 3)),
        ("f1", _outcome("b", Result.OK, 5, user="user-2")),
        ("f1", _outcome("c", Result.OK, 4)),
        ("f1", _outcome("d", Result.OK, 2)),
    ]
    assert [(u.outcome.user, u.outcome.key) for u in newest_states(ran)] == [
        ("user-1", "c"),
        ("user-2", "b"),
    ]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 150), st.booleans()), min_size=1, max_size=40))
def test_judge__each_number_is_accepted_once_and_refusals_change_nothing(
    sends: list[tuple[int, bool]],
) -> None:
    """Against a plain model: a number is new if unseen and above highest - 64; a resend with
    other content is a conflict; refusals keep the state; the ack edge never goes back."""
    state, hi, edge = STATE, 0, 0
    logged: dict[int, bytes] = {}
    model_seen: set[int] = set()
    for seq, other_content in sends:
        s = signed(report(seq, ts_ms=2 if other_content else 1))
        j = judge(state, s, "active", logged.get(seq), RULES)
        stale = seq <= hi - 64
        if not stale and seq not in model_seen:
            assert j.rejection is None and j.event is not None
            model_seen.add(seq)
            hi = max(hi, seq)
            logged[seq] = s.envelope
        else:
            assert j.rejection is not None and j.event is None
            conflict = not stale and cose.peek_payload(logged[seq]) != s.payload
            expected = (
                RejectionKind.REFUSED
                if stale
                else RejectionKind.SEQ_CONFLICT
                if conflict
                else RejectionKind.DUPLICATE
            )
            assert j.rejection.kind is expected
            assert j.state is not None
            assert j.state.data == state.data
            if not conflict:
                assert j.state is state
        assert j.state is not None
        assert j.state.data.contiguous >= edge
        edge = j.state.data.contiguous
        state = j.state

"""The judge and the pool plan of a credit application (kind 16), without broker or database:
only a phone applies, with attributes the scorecard knows; a refused application uses up and
acks its number (resending it would be refused again) and writes nothing to the event log; an
accepted one is logged and planned as `apply`, its command decided once the ingest read the
user's devices (`actions.approved`)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from cloud_bridge import actions
from cloud_bridge.actions import Action
from cloud_bridge.judge import Judgement, RejectionKind, decision_result, judge
from cloud_bridge.pool.approval import ApplicationDecision, Outcome
from cloud_bridge.pool.commands import OpenPool
from cloud_bridge.pool.results import Result
from cloud_bridge.pool.service import Outcome as PoolOutcome
from cloud_bridge.risk.verdict import Level, Verdict
from protocol import messages as m
from protocol import topics
from protocol.errors import Reason
from protocol.topics import Channel
from tests.bridge.test_judge import DEVICE, FLEET, RULES, STATE, seen, signed
from tests.pool.test_cli import ROOT

GOOD: dict[str, Any] = json.loads((ROOT / "docs" / "examples" / "applicant.json").read_text())
PHONE = replace(STATE, kind="phone")
TOPIC = topics.device(FLEET, DEVICE, Channel.APPLICATION)


def application(seq: int, applicant: dict[str, Any] | None = None) -> m.Application:
    return m.Application(
        sender=DEVICE, seq=seq, boot=3, ts_ms=1, applicant=GOOD if applicant is None else applicant
    )


def judged(state: Any, msg: m.Message) -> Judgement:
    return judge(state, signed(msg, topic=TOPIC), "active", None, RULES)


@pytest.mark.parametrize(
    ("name", "state", "applicant", "reason", "says"),
    [
        ("a fridge applies", STATE, GOOD, Reason.WRONG_DEVICE_KIND, "kind 'fridge' may not apply"),
        (
            "an EV applies",
            replace(STATE, kind="ev"),
            GOOD,
            Reason.WRONG_DEVICE_KIND,
            "kind 'ev' may not",
        ),
        ("unknown attribute", PHONE, {**GOOD, "shoe_size": 44}, Reason.BAD_FIELD, "shoe_size"),
        ("unknown category", PHONE, {**GOOD, "housing": "castle"}, Reason.BAD_FIELD, "'castle'"),
        ("text for a number", PHONE, {**GOOD, "age_in_years": "old"}, Reason.BAD_FIELD, "number"),
    ],
)
def test_a_refused_application_uses_its_number_and_changes_nothing_else(
    name: str, state: Any, applicant: dict[str, Any], reason: Reason, says: str
) -> None:
    before = replace(state, data=seen(1, 2).data)
    j = judged(before, application(3, applicant))
    assert j.rejection is not None and j.rejection.reason is reason, name
    assert j.rejection.kind is RejectionKind.REFUSED and says in j.rejection.detail
    assert j.rejection.recorded  # stored and published on the device's risk topic
    assert j.event is None and j.plan is None  # not logged, no pool command
    assert j.ack and j.state is not None and j.state.data.hi == 3  # used up and acked
    assert replace(j.state, data=before.data) == before  # nothing else moved


def test_a_phone_application_is_logged_and_planned_without_a_command_yet() -> None:
    j = judged(PHONE, application(1))
    assert j.rejection is None and j.event is not None and j.event.kind == 16
    assert j.plan is not None and j.plan.action is Action.APPLY and j.plan.command is None
    assert j.ack and j.state is not None and j.state.data.hi == 1
    assert decision_result(j.plan, {}, False) == "internal_error"  # the fallback decides nothing
    again = judged(j.state, application(1))  # the same number again: a duplicate
    assert again.rejection is not None and again.rejection.reason is Reason.REPLAY
    assert again.rejection.kind is RejectionKind.DUPLICATE and again.plan is None


def test_an_application_from_a_held_phone_is_not_decided() -> None:
    held = actions.plan(application(1), "user-1", Verdict(Level.HOLD, ("score_hold",), 1), None)  # type: ignore[arg-type]
    assert held.action is Action.APPLY and held.command is None
    assert decision_result(held, {}, True) == "risk_hold"


DECIDED = {
    Outcome.APPROVE: ApplicationDecision(Outcome.APPROVE, 250_000, 1_200, 610, 900, 800, ("a",)),
    Outcome.REFER: ApplicationDecision(Outcome.REFER, 0, 0, 500, 2_000, 2_000, ("b",)),
    Outcome.DECLINE: ApplicationDecision(Outcome.DECLINE, 0, 0, 400, 5_000, 5_000, ("c",)),
}
ALLOW = Verdict(Level.ALLOW, (), 0)


def test_an_approval_opens_the_pool_with_its_limit_and_rate_and_others_open_nothing() -> None:
    base = actions.plan(application(7), "user-1", ALLOW, None)  # type: ignore[arg-type]
    approved = actions.approved(base, "user-1", "dev-1:7:apply", DECIDED[Outcome.APPROVE])
    assert approved.command == OpenPool(
        user="user-1", key="dev-1:7:apply", limit_fen=250_000, rate_bps=1_200
    )
    assert approved.amount_fen == 250_000
    for outcome in (Outcome.REFER, Outcome.DECLINE):
        plan = actions.approved(base, "user-1", "dev-1:7:apply", DECIDED[outcome])
        assert plan.command is None and plan.amount_fen == 0
        assert decision_result(plan, {}, True) == outcome.value


def pool_outcome(result: Result) -> PoolOutcome:
    return PoolOutcome(user="user-1", key="dev-1:7:apply", kind="open", result=result, view=None)


@pytest.mark.parametrize(
    ("result", "published"),
    [(Result.OK, "approve"), (Result.POOL_EXISTS, Result.POOL_EXISTS.value)],
)
def test_an_approval_says_approve_or_why_the_pool_did_not_open(
    result: Result, published: str
) -> None:
    base = actions.plan(application(7), "user-1", ALLOW, None)  # type: ignore[arg-type]
    plan = actions.approved(base, "user-1", "dev-1:7:apply", DECIDED[Outcome.APPROVE])
    assert decision_result(plan, {"dev-1:7:apply": pool_outcome(result)}, True) == published
    assert decision_result(plan, {}, False) == "internal_error"  # not run: the fallback


def test_without_a_scorecard_applications_are_refused_saying_so() -> None:
    j = judge(PHONE, signed(application(1), topic=TOPIC), "active", None,
              replace(RULES, scorecard=None))  # fmt: skip
    assert j.rejection is not None and j.rejection.reason is Reason.BAD_FIELD
    assert "no scorecard" in j.rejection.detail and j.ack and j.plan is None

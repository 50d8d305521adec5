"""The ingest judge on the server's score (real model, real simulated fingerprints): the device's
own risk_pm never decides, and a lie about it is a tamper reason that holds the device's events.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from agent.config import REPO_MODEL
from agent.features import model_input
from agent.scoring import Scorer
from agent.simulator.cohort import LabelledSession, device_sessions
from cloud_bridge.judge import Category, Rules, judge
from cloud_bridge.risk.verdict import Level
from protocol import messages as m
from tests.bridge.test_judge import DEVICE, RULES, STATE, restock, signed

SCORE = Scorer.load(REPO_MODEL)  # the model the bridge loads by default, for the device side
SHA = SCORE.model_sha256
PHONE = RULES.thresholds.kinds["phone"]


def sessions() -> list[LabelledSession]:
    return device_sessions(1_900_001, "phone", genuine=12, per_impostor=2)


def q_of(s: LabelledSession) -> int:
    return SCORE.score(model_input(s.current, s.baseline, SCORE.normalisation)).output_q


def report(
    seq: int, s: LabelledSession, risk_pm: int | None = None, features: bytes | None = None
) -> m.Report:
    honest = SCORE.score(model_input(s.current, s.baseline, SCORE.normalisation))
    return m.Report(
        sender=DEVICE, seq=seq, boot=3, ts_ms=1, model_id="risk-v1", model_sha256=SHA,
        risk_pm=honest.risk_pm if risk_pm is None else risk_pm,
        features=honest.input_q if features is None else features,
        fingerprint=s.current.to_wire(), mono_ms=1,
    )  # fmt: skip


@pytest.fixture(scope="module")
def phone() -> tuple[LabelledSession, LabelledSession]:
    """A genuine session under the phone's step-up threshold and an impostor's over its hold
    threshold, of one simulated phone, with the phone's enrolled baseline."""
    all_ = sessions()
    genuine = next(s for s in all_ if not s.impostor and q_of(s) < PHONE.step_up_q)
    impostor = next(s for s in all_ if s.impostor and q_of(s) >= PHONE.hold_q)
    return genuine, impostor


def enrolled(s: LabelledSession) -> object:
    return replace(STATE, kind="phone", baseline=s.baseline.to_wire(), risk_q=None)


def test_a_device_reporting_zero_for_an_impostor_is_held(
    phone: tuple[LabelledSession, LabelledSession],
) -> None:
    _genuine, impostor = phone
    state = enrolled(impostor)
    j = judge(state, signed(report(1, impostor, risk_pm=0)), "active", None, RULES)  # type: ignore[arg-type]
    assert j.plan is not None and j.rejection is None
    assert j.plan.verdict.level is Level.HOLD
    assert "score_mismatch" in j.plan.verdict.reasons and "score_hold" in j.plan.verdict.reasons
    assert [(n.category, n.reason) for n in j.notes] == [(Category.ALERT, "score_mismatch")]
    assert j.state is not None and j.state.risk_tamper == ("score_mismatch",)
    # The trigger that follows says risk_pm 0 too: judged on the server's score, no hold placed.
    t = judge(j.state, signed(restock(2, risk_pm=0)), "active", None, RULES)
    assert t.plan is not None and t.plan.verdict.level is Level.HOLD and t.plan.command is None


def test_an_honest_impostor_report_holds_without_a_tamper_code(
    phone: tuple[LabelledSession, LabelledSession],
) -> None:
    _genuine, impostor = phone
    j = judge(enrolled(impostor), signed(report(1, impostor)), "active", None, RULES)  # type: ignore[arg-type]
    assert j.plan is not None
    assert (j.plan.verdict.level, j.plan.verdict.reasons) == (Level.HOLD, ("score_hold",))


def test_forged_benign_features_are_a_features_mismatch(
    phone: tuple[LabelledSession, LabelledSession],
) -> None:
    genuine, impostor = phone
    benign = report(1, genuine)  # the features and risk_pm of a genuine session...
    forged = replace(benign, fingerprint=impostor.current.to_wire())  # ...on an impostor's
    j = judge(enrolled(impostor), signed(forged), "active", None, RULES)  # type: ignore[arg-type]
    assert j.plan is not None and j.plan.verdict.level is Level.HOLD
    assert j.plan.verdict.reasons[0] == "features_mismatch"


def test_a_genuine_report_then_trigger_is_allowed_whatever_risk_pm_the_trigger_says(
    phone: tuple[LabelledSession, LabelledSession],
) -> None:
    genuine, _impostor = phone
    j = judge(enrolled(genuine), signed(report(1, genuine)), "active", None, RULES)  # type: ignore[arg-type]
    assert j.plan is not None and j.plan.verdict.level is Level.ALLOW and j.notes == ()
    assert j.state is not None and j.state.risk_q == q_of(genuine)
    t = judge(j.state, signed(restock(2, risk_pm=999)), "active", None, RULES)
    assert t.plan is not None and t.plan.verdict.level is Level.ALLOW
    assert t.plan.command is not None


def test_an_unknown_model_is_unscored_and_says_so(
    phone: tuple[LabelledSession, LabelledSession],
) -> None:
    genuine, _impostor = phone
    other = replace(report(1, genuine), model_sha256=bytes(32))
    j = judge(enrolled(genuine), signed(other), "active", None, RULES)  # type: ignore[arg-type]
    assert j.plan is not None
    assert (j.plan.verdict.level, j.plan.verdict.reasons) == (Level.STEP_UP, ("unknown_model",))
    t = judge(j.state, signed(restock(2)), "active", None, RULES)
    assert t.plan is not None and t.plan.verdict.reasons == ("unknown_model",)


def test_without_a_scorer_every_event_is_unscored(
    phone: tuple[LabelledSession, LabelledSession],
) -> None:
    genuine, _impostor = phone
    rules = Rules(RULES.thresholds, RULES.cfg, None)
    j = judge(enrolled(genuine), signed(report(1, genuine)), "active", None, rules)  # type: ignore[arg-type]
    assert j.plan is not None and j.plan.verdict.reasons == ("unscored",)

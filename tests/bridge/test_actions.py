"""Device event -> pool commands (cloud_bridge.actions), and back to what the decision says,
without broker or database: the plans go through the real pure engine."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from cloud_bridge import actions
from cloud_bridge.actions import Action
from cloud_bridge.config import BridgeConfig
from cloud_bridge.pool import commands as c
from cloud_bridge.pool.engine import decide
from cloud_bridge.pool.policy import Policy
from cloud_bridge.pool.results import Result
from cloud_bridge.pool.service import Outcome
from cloud_bridge.pool.state import PoolState
from cloud_bridge.pool.view import PoolView
from cloud_bridge.risk.verdict import Level, Verdict
from protocol import messages as m

CFG = BridgeConfig(path=None, data_dir=Path("."), fleet="f1")  # illness: 2,000,000 fen
ALLOW = Verdict(Level.ALLOW, (), 0)
T0 = 1_700_000_000_000


def sos(seq: int, amount_fen: int = 0) -> m.Trigger:
    body = m.EmergencyBody(emergency="illness", source="fall", amount_fen=amount_fen)
    return m.Trigger(
        sender="dev-1", seq=seq, boot=1, ts_ms=1, model_id="risk-v1", model_sha256=bytes(32),
        risk_pm=10, mono_ms=1, rule="fall", priority=255, body=body,
    )  # fmt: skip


def pool(limit_fen: int) -> PoolState:
    state = decide(None, c.OpenPool(user="u1", key="open", limit_fen=limit_fen), T0, Policy()).state
    assert state is not None
    return state


def run(plan: actions.Plan, state: PoolState) -> tuple[PoolState, dict[str, Outcome]]:
    """The plan's command through the engine, as the bridge's service would run it."""
    assert plan.command is not None
    d = decide(state, plan.command, T0 + 1, Policy())
    assert d.state is not None
    view = PoolView.of(d.state)
    key = plan.command.key
    return d.state, {key: Outcome("u1", key, plan.command.KIND, d.result, view, d.events)}


def test_an_emergency_without_an_amount_on_a_small_pool_draws_what_is_there() -> None:
    plan = actions.plan(sos(7), "u1", ALLOW, CFG)
    assert isinstance(plan.command, c.Draw) and plan.command.up_to
    assert (plan.action, plan.amount_fen) == (Action.EMERGENCY_DRAW, 2_000_000)
    after, outcomes = run(plan, pool(1_000_000))
    assert outcomes["dev-1:7:emergency"].result is Result.OK
    assert after.outstanding_fen == 1_000_000 and after.available_fen == 0
    # The published decision says what was drawn, not the default it was capped from.
    assert actions.settled(plan, outcomes).amount_fen == 1_000_000
    assert actions.refusal(plan, outcomes) is None


def test_an_emergency_with_an_amount_is_all_or_nothing() -> None:
    plan = actions.plan(sos(8, amount_fen=1_500_000), "u1", ALLOW, CFG)
    assert isinstance(plan.command, c.Draw) and not plan.command.up_to
    _, outcomes = run(plan, pool(1_000_000))
    assert outcomes["dev-1:8:emergency"].result is Result.EXCEEDS_CREDIT
    assert actions.settled(plan, outcomes).amount_fen == 1_500_000
    assert actions.refusal(plan, outcomes) is Result.EXCEEDS_CREDIT


def test_a_refused_trigger_is_counted_once_not_on_its_replay() -> None:
    state = pool(5_000_000)
    for seq in (1, 2, 3):
        state, _ = run(actions.plan(sos(seq, amount_fen=10_000), "u1", ALLOW, CFG), state)
    plan = actions.plan(sos(4, amount_fen=10_000), "u1", ALLOW, CFG)
    _, outcomes = run(plan, state)
    assert actions.refusal(plan, outcomes) is Result.TOO_MANY_EMERGENCIES
    first = outcomes[plan.command.key]  # type: ignore[union-attr]
    replayed = Outcome.from_json(first.to_json(), replayed=True)
    assert actions.refusal(plan, {first.key: replayed}) is None
    assert actions.refusal(plan, {}) is None  # not run (the fallback after an error)


def test_a_merchant_devices_turnover_trigger_is_reported_to_its_pool() -> None:
    day = T0 // 86_400_000
    body = m.TurnoverBody(day=day, turnover_fen=123_456)
    event = m.Trigger(
        sender="pos-1", seq=3, boot=1, ts_ms=1, model_id="risk-v1", model_sha256=bytes(32),
        risk_pm=10, mono_ms=1, rule="daily-turnover", priority=1, body=body,
    )  # fmt: skip
    plan = actions.plan(event, "u1", ALLOW, CFG)
    assert plan.command == c.ReportTurnover(
        user="u1", key="pos-1:3:turnover", day=day, turnover_fen=123_456
    )
    assert (plan.action, plan.amount_fen) == (Action.TURNOVER, 123_456)
    after, outcomes = run(plan, pool(100_000))
    assert outcomes["pos-1:3:turnover"].result is Result.OK
    assert after.first_turnover_day == day and after.next_review_ms > T0
    held = actions.plan(event, "u1", Verdict(Level.FREEZE, (), 0), CFG)
    assert held.command is None  # a frozen verdict reports nothing


def test_a_held_trigger_names_its_action_and_amount_without_a_command() -> None:
    from cloud_bridge.judge import decision_result

    for level in (Level.HOLD, Level.FREEZE):
        verdict = Verdict(level, ("score_hold",), 1)
        plan = actions.plan(sos(9, amount_fen=50_000), "u1", verdict, CFG)
        assert plan.command is None and actions.held(plan)
        assert (plan.action, plan.amount_fen) == (Action.EMERGENCY_DRAW, 50_000)
        assert decision_result(plan, {}, acted=True) == f"risk_{level.value}"
    # A step-up waits for the user's confirmation (tests/bridge/test_stepup.py) ...
    step_up = actions.plan(sos(10), "u1", Verdict(Level.STEP_UP, ("unscored",), 0), CFG)
    assert step_up.command is None and actions.held(step_up)
    assert step_up.stepup is actions.StepUp.PENDING
    assert decision_result(step_up, {}, acted=True) == "step_up_pending"
    # ... and acts at once with [risk] step_up = "allow", or once confirmed.
    allow = replace(CFG, risk_step_up="allow")
    at_once = actions.plan(sos(10), "u1", Verdict(Level.STEP_UP, ("unscored",), 0), allow)
    assert isinstance(at_once.command, c.Draw) and not actions.held(at_once)
    confirmed = actions.plan(
        sos(10), "u1", Verdict(Level.STEP_UP, ("step_up_confirmed",), 0), CFG,
        actions.StepUp.CONFIRMED,
    )  # fmt: skip
    assert isinstance(confirmed.command, c.Draw) and not actions.held(confirmed)

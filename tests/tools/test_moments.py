"""How the demo recognises its moments in bridge messages (pure: messages built by hand)."""

from __future__ import annotations

from protocol import messages as m
from tools.demo.moments import Moments
from tools.demo.watch import percentile


def decision(device: str, action: str, result: str = "ok", amount_fen: int = 0) -> m.Decision:
    return m.Decision(
        sender="bridge-1",
        seq=1,
        boot=1,
        ts_ms=1_005,
        user="u01",
        device=device,
        device_seq=9,
        decision="allow",
        action=action,
        result=result,
        amount_fen=amount_fen,
        received_ms=1_000,
    )


def pool_state(user: str, status: str) -> m.PoolState:
    return m.PoolState(
        sender="bridge-1",
        seq=2,
        boot=1,
        ts_ms=1,
        user=user,
        status=status,
        limit_fen=100,
        available_fen=100,
        outstanding_fen=0,
        held_fen=0,
        rate_bps=1800,
        version=3,
    )


def test_natural_moments_need_an_ok_result() -> None:
    moments = Moments()
    moments.on_message(1.0, decision("h01-fridge", "hold", "too_many_holds", 500))
    assert moments.get("restock").state == "waiting"
    moments.on_message(2.0, decision("h01-fridge", "hold", "ok", 500))
    moments.on_message(3.0, decision("h01-wearable", "health_boost"))
    moments.on_message(4.0, decision("h01-ev", "mileage"))
    assert [moments.get(k).took_s for k in ("restock", "health", "ev")] == [2.0, 3.0, 4.0]
    assert "5.00 yuan held" in moments.get("restock").detail


def test_the_emergency_counts_only_the_armed_device_and_amount() -> None:
    moments = Moments()
    moments.on_message(1.0, decision("h01-phone", "emergency_draw", amount_fen=88_800))
    assert moments.get("emergency").state == "waiting"  # not armed yet: someone else's
    moments.arm_emergency(10.0, "h01-phone", 88_800)
    moments.on_message(10.1, decision("h02-wearable", "emergency_draw", amount_fen=300_000))
    assert moments.get("emergency").state == "armed"
    moments.on_message(10.5, decision("h01-phone", "emergency_draw", amount_fen=88_800))
    moments.cue("emergency", 10.25)  # the exact time the event was raised, learnt later
    got = moments.get("emergency")
    assert got.state == "done" and abs(got.took_s - 0.25) < 1e-9  # type: ignore[operator]
    assert "250 ms" in got.detail and "in the bridge 5 ms" in got.detail


def test_the_emergency_shows_its_payout_latency_and_tier_budget() -> None:
    moments = Moments()
    moments.arm_emergency(10.0, "h01-phone", 88_800)
    moments.on_message(10.5, decision("h01-phone", "emergency_draw", amount_fen=88_800))
    assert "payout" not in moments.get("emergency").detail  # not in yet
    payout = m.Payout(
        sender="bridge-1", seq=9, boot=1, ts_ms=1_000_012, user="h01", amount_fen=88_800,
        tier="illness", key="h01-phone:4:emergency", version=3, device="h01-phone",
        device_seq=4, received_ms=1_000_000, budget_ms=15_000,
    )  # fmt: skip
    moments.on_message(10.6, payout)
    detail = moments.get("emergency").detail
    assert "payout signed in 12 ms, within the illness budget of 15000 ms" in detail
    other = Moments()  # another device's payout is not this emergency's
    other.arm_emergency(10.0, "h02-phone", 88_800)
    other.on_message(10.5, decision("h02-phone", "emergency_draw", amount_fen=88_800))
    other.on_message(10.6, payout)
    assert "payout" not in other.get("emergency").detail


def test_a_refused_emergency_draw_fails_the_moment() -> None:
    moments = Moments()
    moments.arm_emergency(1.0, "h01-phone", 88_800)
    moments.on_message(1.2, decision("h01-phone", "emergency_draw", "pool_frozen", 88_800))
    assert moments.get("emergency").state == "failed"
    assert "pool_frozen" in moments.get("emergency").failed


def test_an_emergency_held_by_the_risk_verdict_fails_the_moment_saying_why() -> None:
    moments = Moments()
    moments.arm_emergency(1.0, "h01-phone", 88_800)
    held = decision("h01-phone", "emergency_draw", "risk_hold", 88_800)
    held = m.Decision(**{**held.__dict__, "decision": "hold", "reasons": ("score_hold",)})
    moments.on_message(1.2, held)
    got = moments.get("emergency")
    assert got.state == "failed"
    assert got.failed == "the draw was refused: hold, risk_hold (score_hold)"


def test_the_clone_needs_the_alert_and_the_freeze() -> None:
    moments = Moments()
    moments.arm_clone(20.0, "h02-phone", "u02")
    alert = m.Risk(
        sender="bridge-1",
        seq=3,
        boot=1,
        ts_ms=1,
        device="h02-phone",
        category="alert",
        reason="seq_conflict",
    )
    moments.on_message(20.5, pool_state("u01", "frozen"))  # another user's pool
    moments.on_message(20.6, alert)
    assert moments.get("clone").state == "armed"
    moments.on_message(20.8, pool_state("u02", "frozen"))
    got = moments.get("clone")
    assert got.state == "done" and abs(got.took_s - 0.8) < 1e-9  # type: ignore[operator]


def test_the_restart_counts_only_with_zero_loss() -> None:
    for zero_loss, state in ((True, "done"), (False, "failed")):
        moments = Moments()
        moments.arm_restart(30.0)
        moments.recovered(34.0, "back")
        moments.finish_restart(zero_loss, "checked")
        assert moments.get("restart").state == state
    never = Moments()
    never.arm_restart(30.0)
    never.finish_restart(True, "checked")
    assert never.get("restart").state == "failed"


def test_percentile_by_nearest_rank() -> None:
    assert percentile([], 50) == 0.0
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (
        50.0,
        99.0,
        100.0,
    )


def test_an_emergency_waiting_for_a_step_up_is_done_when_the_confirmed_draw_comes() -> None:
    moments = Moments()
    moments.arm_emergency(1.0, "h01-phone", 88_800)
    pending = decision("h01-phone", "emergency_draw", "step_up_pending", 88_800)
    moments.on_message(1.2, m.Decision(**{**pending.__dict__, "decision": "step_up"}))
    assert moments.get("emergency").state == "armed"  # not refused: waiting for the phone
    moments.on_message(3.0, decision("h01-phone", "emergency_draw", amount_fen=88_800))
    assert moments.get("emergency").state == "done"

"""Per-user sequence plausibility (cloud_bridge.risk.sequence) and its simulation eval
(tools.eval_risk.sig_sequence)."""

from __future__ import annotations

import math

import pytest

from cloud_bridge.risk import sequence as sq
from tools.eval_risk import sig_sequence


def routine(n: int) -> list[sq.Event]:
    """A fridge restocking every evening for about 100 yuan, then the owner drawing 1,000 yuan
    from the phone at lunch."""
    out = []
    for i in range(n):
        if i % 2 == 0:
            out.append(sq.Event("restock", 10_000 + 100 * (i % 7), 19, "fridge"))
        else:
            out.append(sq.Event("draw", 100_000 + 1_000 * (i % 5), 12, "phone"))
    return out


def models() -> tuple[sq.Model, sq.Model]:
    train = routine(40)
    other = [sq.Event("emergency", 300_000, h % 24, "watch") for h in range(0, 60, 3)]
    pop = sq.population([train, other])
    return sq.fit(train, pop), pop


def test_bands() -> None:
    assert sq.amount_band(0, (10, 20)) == 0
    assert [sq.amount_band(a, (10, 20)) for a in (1, 10, 11, 20, 21)] == [1, 1, 2, 2, 3]


def test_hours_are_smoothed_around_the_clock() -> None:
    user, _ = models()
    p = user.hour["restock"]  # every restock at 19:00
    assert p[18] == pytest.approx(p[20]) and p[17] == pytest.approx(p[21])
    assert p[19] > p[18] > p[17] > p[16]
    draws = user.hour["draw"]  # every draw at 12:00; the kernel wraps past midnight too
    assert draws[10] > draws[9]
    late = [sq.Event("draw", 100_000, 23, "phone")] * 10 + routine(20)
    wrapped = sq.fit(late, sq.population([late])).hour["draw"]
    assert wrapped[0] > wrapped[3] and wrapped[1] > wrapped[3]


def test_cuts_are_per_kind() -> None:
    user, _ = models()
    assert user.cuts_fen["restock"][0] < 11_000 < user.cuts_fen["draw"][0]
    assert "emergency" not in user.cuts_fen


def test_routine_is_typical_and_a_thief_is_not() -> None:
    user, _ = models()
    usual = sq.surprise(user, "restock", sq.Event("draw", 102_000, 12, "phone"))
    night_drain = sq.surprise(user, "restock", sq.Event("draw", 900_000, 3, "phone"))
    wrong_device = sq.surprise(user, "restock", sq.Event("draw", 102_000, 12, "fridge"))
    assert usual < 0.5
    assert night_drain > usual + 5
    assert wrong_device > usual + 3


def test_probabilities_sum_to_one() -> None:
    user, pop = models()
    for table in (user.transition, user.amount, user.hour, user.device, pop.transition):
        for row in table.values():
            assert math.fsum(row.values()) == pytest.approx(1.0)


def test_step__cusum_accumulates_and_drains() -> None:
    user, _ = models()
    policy = sq.Policy(drift=1.0, alarm=8.0)
    thief = sq.Event("draw", 900_000, 3, "phone")
    s1 = sq.step(sq.State("restock"), user, thief, policy)
    assert s1.state.evidence == pytest.approx(s1.surprise - 1.0)
    s2 = sq.step(s1.state, user, thief, policy)
    assert s2.state.evidence > s1.state.evidence and s2.flagged
    calm = sq.step(s2.state, user, sq.Event("restock", 10_200, 19, "fridge"), policy)
    assert calm.state.evidence < s2.state.evidence
    assert calm.state.prev_kind == "restock"
    never_negative = sq.step(
        sq.State("draw"), user, sq.Event("restock", 10_200, 19, "fridge"), policy
    )
    assert never_negative.state.evidence == 0.0 and not never_negative.flagged


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "loan"}, "kind must be"),
        ({"amount_fen": -1}, "never negative"),
        ({"hour": 24}, "hour must be"),
    ],
)
def test_event__invalid(kwargs: dict[str, object], message: str) -> None:
    base: dict[str, object] = dict(kind="draw", amount_fen=1, hour=1, device="phone")
    with pytest.raises(sq.SequenceError, match=message):
        sq.Event(**{**base, **kwargs})  # type: ignore[arg-type]


def test_fit__needs_events() -> None:
    _, pop = models()
    with pytest.raises(sq.SequenceError, match="at least"):
        sq.fit(routine(5), pop)


def test_eval__tp_and_fp_on_a_smaller_run() -> None:
    """The goals (TP >= 0.65 at FP <= 0.02) on 300 users, with a margin for sampling."""
    r = sig_sequence.evaluate(seed=31, quick=True)
    assert r["fraud_events"] > 800 and r["genuine_events"] == 300 * sig_sequence.TEST
    assert r["tp"] >= 0.62
    assert r["fp"] <= 0.025
    # what the bridge runs (user_signals: flat prior, online, confirmed step-ups learnt)
    assert r["live_tp"] >= 0.62
    assert r["live_fp"] <= 0.025

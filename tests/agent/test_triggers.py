from __future__ import annotations

import json

from agent.config import Rule
from agent.triggers import Event, Reading, TriggerEngine
from protocol import messages as m


def rule(**kw: object) -> Rule:
    base: dict[str, object] = dict(name="r", kind="restock", priority=5, cooldown_s=60, streak=1)
    base.update(kw)
    return Rule(**base)  # type: ignore[arg-type]


def test_restock__streak_then_cooldown() -> None:
    eng = TriggerEngine((rule(item="milk", threshold_pct=25, full_cost_fen=3000, streak=2),))
    assert eng.evaluate(Reading(0, {"inv.milk": 20})) == []  # streak 1 of 2
    fired = eng.evaluate(Reading(1000, {"inv.milk": 10}))
    assert [f.body for f in fired] == [
        m.RestockBody(item="milk", level_pct=10, threshold_pct=25, est_cost_fen=2700)
    ]
    assert eng.evaluate(Reading(30_000, {"inv.milk": 5})) == []  # cooling down
    assert len(eng.evaluate(Reading(61_000, {"inv.milk": 5}))) == 1
    assert eng.evaluate(Reading(200_000, {"inv.milk": 80})) == []  # refilled: streak resets


def test_health_streak__fires_on_the_nth_good_day() -> None:
    eng = TriggerEngine(
        (rule(kind="health_streak", goal_steps=10_000, streak_days=3, cooldown_s=0),)
    )
    fired = []
    steps = [12_000, 11_000, 9_000, 10_500, 10_200, 13_000, 14_000]
    for day, total in enumerate(steps):
        fired += eng.evaluate(Reading(day * 100, {"day": day, "steps_today": total}))
    fired += eng.evaluate(Reading(1000, {"day": len(steps), "steps_today": 0}))
    # Days 3, 4, 5 make the first streak of 3 (day 2 broke the first run); day 6 makes 4.
    assert [f.body for f in fired] == [m.HealthStreakBody(streak_days=3, goal_steps=10_000)]


def test_ev_tier__fires_on_each_change() -> None:
    eng = TriggerEngine((rule(kind="ev_tier", tiers_km=(500, 1500), cooldown_s=0),))
    tiers = []
    for i, km in enumerate([100, 600, 700, 1600, 400]):
        tiers += [f.body.tier for f in eng.evaluate(Reading(i, {"km_30d": km}))]  # type: ignore[attr-defined]
    assert tiers == [1, 2, 0]


def test_emergency__explicit_and_fall_and_priority_order() -> None:
    eng = TriggerEngine(
        (
            rule(name="low", kind="restock", item="milk", priority=1),
            rule(
                name="sos",
                kind="emergency",
                emergency="illness",
                priority=255,
                fall_detection=True,
                cooldown_s=0,
            ),
        )
    )
    fired = eng.evaluate(Reading(0, {"inv.milk": 0}, (Event("illness", "explicit", 50_000),)))
    assert [f.rule.name for f in fired] == ["sos", "low"]
    assert fired[0].body == m.EmergencyBody(
        emergency="illness", source="explicit", amount_fen=50_000
    )
    fall = eng.evaluate(Reading(1, {}, (Event("illness", "fall"),)))
    assert fall[0].body == m.EmergencyBody(emergency="illness", source="fall")
    assert eng.evaluate(Reading(2, {}, (Event("disaster", "explicit"),))) == []  # not this rule


def test_state_survives_a_json_round_trip() -> None:
    rules = (rule(item="milk", streak=1, cooldown_s=3600),)
    eng = TriggerEngine(rules)
    assert len(eng.evaluate(Reading(0, {"inv.milk": 1}))) == 1
    restored = TriggerEngine(rules, json.loads(json.dumps(eng.state)))
    assert restored.evaluate(Reading(10_000, {"inv.milk": 1})) == []  # still cooling down

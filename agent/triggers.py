"""Scene triggers: declarative rules from the config, evaluated on every sensor reading.

Pure: no clock but the reading's own `ts_ms`, no I/O. Each rule has a streak (how many
consecutive readings its condition must hold), a cool-down after firing and a priority. The
engine's state is a plain dict so the agent can persist it and keep cool-downs over restarts.

Kinds (parameters in agent.config.Rule):
- restock: `inv.<item>` telemetry (fill level, %) below `threshold_pct`; offers the refill at
  `full_cost_fen * (100 - level) / 100`.
- health_streak: `day` and `steps_today` telemetry; fires when the wearer has met `goal_steps`
  on `streak_days` consecutive days (and again at every further multiple).
- ev_tier: `km_30d` telemetry against `tiers_km`; fires when the mileage tier changes.
- emergency: explicit emergency events from the source, and falls when `fall_detection` is set.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

from agent.config import Rule
from protocol import messages as m


@dataclass(frozen=True)
class Event:
    """Something a source observed at once: an explicit emergency or a detected fall."""

    emergency: str
    source: str  # "explicit" or "fall"
    amount_fen: int = 0


@dataclass(frozen=True)
class Reading:
    """One poll of a sensor source: integer telemetry by name, and events."""

    ts_ms: int
    telemetry: dict[str, int]
    events: tuple[Event, ...] = ()


@dataclass(frozen=True)
class Fired:
    rule: Rule
    body: m.Body


class TriggerEngine:
    """Evaluates every rule on every reading; `state` round-trips through JSON."""

    def __init__(self, rules: tuple[Rule, ...], state: dict[str, Any] | None = None) -> None:
        self.rules = rules
        saved = state or {}
        self.state: dict[str, dict[str, Any]] = {r.name: dict(saved.get(r.name, {})) for r in rules}

    def evaluate(self, reading: Reading) -> list[Fired]:
        fired: list[Fired] = []
        for rule in self.rules:
            st = self.state[rule.name]
            body = _CHECKS[rule.kind](rule, st, reading)
            if body is None:
                continue
            last = st.get("last_fired_ms")
            if last is not None and reading.ts_ms - last < rule.cooldown_s * 1000:
                continue
            st["last_fired_ms"] = reading.ts_ms
            fired.append(Fired(rule, body))
        return sorted(fired, key=lambda f: -f.rule.priority)


def _held(rule: Rule, st: dict[str, Any], condition: bool) -> bool:
    """Count consecutive readings for which `condition` holds; True once the streak is met."""
    st["count"] = st.get("count", 0) + 1 if condition else 0
    return bool(st["count"] >= rule.streak)


def _restock(rule: Rule, st: dict[str, Any], reading: Reading) -> m.Body | None:
    level = reading.telemetry.get(f"inv.{rule.item}")
    if level is None:
        return None
    level = max(0, min(100, level))
    if not _held(rule, st, level < rule.threshold_pct):
        return None
    return m.RestockBody(
        item=rule.item,
        level_pct=level,
        threshold_pct=rule.threshold_pct,
        est_cost_fen=rule.full_cost_fen * (100 - level) // 100,
    )


def _health(rule: Rule, st: dict[str, Any], reading: Reading) -> m.Body | None:
    day = reading.telemetry.get("day")
    steps = reading.telemetry.get("steps_today")
    if day is None or steps is None:
        return None
    body = None
    if "day" in st and day != st["day"]:
        # The previous day is over: judge it on its last count.
        met = st.get("steps", 0) >= rule.goal_steps and day == st["day"] + 1
        st["streak"] = st.get("streak", 0) + 1 if met else 0
        if st["streak"] and st["streak"] % rule.streak_days == 0:
            body = m.HealthStreakBody(streak_days=st["streak"], goal_steps=rule.goal_steps)
    st["day"], st["steps"] = day, steps
    return body


def _ev(rule: Rule, st: dict[str, Any], reading: Reading) -> m.Body | None:
    km = reading.telemetry.get("km_30d")
    if km is None:
        return None
    tier = bisect.bisect_right(rule.tiers_km, km)
    if not _held(rule, st, tier != st.get("tier", 0)):
        return None
    st["tier"], st["count"] = tier, 0
    return m.EvTierBody(km_30d=max(0, km), tier=tier)


def _emergency(rule: Rule, st: dict[str, Any], reading: Reading) -> m.Body | None:
    for event in reading.events:
        if event.source == "fall" and not rule.fall_detection:
            continue
        if event.source == "explicit" and event.emergency != rule.emergency:
            continue
        return m.EmergencyBody(
            emergency=rule.emergency if event.source == "fall" else event.emergency,
            source=event.source,
            amount_fen=event.amount_fen,
        )
    return None


_CHECKS = {
    "restock": _restock,
    "health_streak": _health,
    "ev_tier": _ev,
    "emergency": _emergency,
}

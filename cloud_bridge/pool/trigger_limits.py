"""Trigger limits: how often and how much a pool's device triggers may ask. Pure.

A device's own cool-downs (`agent/triggers.py`) are a courtesy: a cloned or compromised device
key signs whatever it is told to. These rules bound what such a key can do to one pool, each
refusal a result code of the command it refuses:

    emergency draws   at most `emergency.max_per_day` draws and   too_many_emergencies,
                      `emergency.max_fen_per_day` fen in any 24 h exceeds_emergency_budget
    health boosts     at least `health.cooldown_ms` apart, at     boost_cooldown,
                      most `health.max_per_week` in any 7 days    too_many_boosts
    mileage reports   at most 30 x `mileage.max_km_per_day` km a  implausible_mileage
                      month, and above the last accepted report
                      by at most `max_km_per_day` a day since it

Where the state lives, and why there: in the pool's own state (`PoolState.emergencies`,
`boosts_ms`, `mileage`), changed by the engine in the same decision as the draw, the boost or
the rate it limits. So a limit is checked and spent under the pool's row lock in the batch's
transaction (two bridge processes cannot both spend the last unit of a budget, and a crash
keeps both or neither), a refusal leaves it untouched like any refusal, an idempotent retry
returns the recorded answer instead of spending twice, and the reference model of
`tests/pool/test_stateful.py` and `test_simulation.py` checks it with every other rule. A
separate module fed from the event log would need its own lock, its own crash story and its
own model, and could disagree with the pool about what happened. The state stays small: each
window keeps only what it still counts (no more than the policy's count when last spent).

The windows are per pool, so per user (one pool per user): all of a user's devices share them.
Time is the engine's clock (the bridge's), never a time a device claims, since a device chooses
its own timestamps; the price is that two rising mileage reports delivered together from a
backlog look as if no time passed between them, and the second is refused (docs/credit-pool.md).
"""

from __future__ import annotations

from cloud_bridge.pool.policy import (
    BOOST_WINDOW_MS,
    DAY_MS,
    EMERGENCY_WINDOW_MS,
    Policy,
)
from cloud_bridge.pool.results import Result
from cloud_bridge.pool.state import PoolState, Spend


def recent_emergencies(state: PoolState, now_ms: int) -> tuple[Spend, ...]:
    """The emergency draws that still count: those of the last 24 hours."""
    return tuple(e for e in state.emergencies if e.at_ms > now_ms - EMERGENCY_WINDOW_MS)


def emergency_count_refusal(state: PoolState, now_ms: int, policy: Policy) -> Result | None:
    """TOO_MANY_EMERGENCIES when the day's count is spent, else None."""
    if len(recent_emergencies(state, now_ms)) >= policy.emergency.max_per_day:
        return Result.TOO_MANY_EMERGENCIES
    return None


def emergency_left_fen(state: PoolState, now_ms: int, policy: Policy) -> int:
    """What the day's emergency budget still allows, fen (never negative: the policy may have
    been lowered since the draws it counts)."""
    spent = sum(e.amount_fen for e in recent_emergencies(state, now_ms))
    return max(0, policy.emergency.max_fen_per_day - spent)


def spend(state: PoolState, amount_fen: int, now_ms: int) -> tuple[Spend, ...]:
    """The emergency window after a draw of `amount_fen` at `now_ms` (older entries dropped)."""
    return (*recent_emergencies(state, now_ms), Spend(now_ms, amount_fen))


def recent_boosts(state: PoolState, now_ms: int) -> tuple[int, ...]:
    """The times of the health boosts that still count: those of the last 7 days."""
    return tuple(t for t in state.boosts_ms if t > now_ms - BOOST_WINDOW_MS)


def boost_refusal(state: PoolState, now_ms: int, policy: Policy) -> Result | None:
    """BOOST_COOLDOWN within `cooldown_ms` of the last boost, TOO_MANY_BOOSTS when the week's
    count is spent, else None."""
    if state.boosts_ms and now_ms - state.boosts_ms[-1] < policy.health.cooldown_ms:
        return Result.BOOST_COOLDOWN
    if len(recent_boosts(state, now_ms)) >= policy.health.max_per_week:
        return Result.TOO_MANY_BOOSTS
    return None


def boosted(state: PoolState, now_ms: int) -> tuple[int, ...]:
    """The boost window after a boost at `now_ms`."""
    return (*recent_boosts(state, now_ms), now_ms)


def mileage_refusal(
    state: PoolState, km_per_month: int, now_ms: int, policy: Policy
) -> Result | None:
    """IMPLAUSIBLE_MILEAGE for a 30-day mileage no vehicle drives, or for one that rose above
    the last accepted report faster than `max_km_per_day` allows in the time since; else None.

    The second bound holds for any honest rolling 30-day total: what it counts now is what the
    last report counted (at most) plus what was driven since. A fall is always plausible."""
    per_day = policy.mileage.max_km_per_day
    if km_per_month > policy.mileage.max_km_per_month:
        return Result.IMPLAUSIBLE_MILEAGE
    last = state.mileage
    if last is not None and (km_per_month - last.km_per_month) * DAY_MS > per_day * (
        now_ms - last.at_ms
    ):
        return Result.IMPLAUSIBLE_MILEAGE
    return None

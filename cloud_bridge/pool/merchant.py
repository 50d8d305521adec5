"""Micro-merchant limits: a merchant pool's limit follows its reported turnover. Pure.

A merchant device (a payment QR stand or a POS) reports each day's turnover, signed
(`ReportTurnover`). The first report makes the pool a merchant pool and schedules its first
review `merchant.review_days` later; from then on the engine reviews the limit on that grid, at
the first command at or after each due time (a scheduler's `Tick` keeps it on time), before the
command itself, like a statement. Each review is a `merchant_reviewed` event, and a limit that
moves is a `limit_changed` event (why `merchant_review`).

The target (`review`):

    monthly    turnover of the `window_days` days before the review day, or of the days
               since the first report if fewer, scaled up to `window_days` (a day not
               reported in that span counts as nothing)
    cap        monthly x `max_turnover_bps` (200 %)
    volatility the daily turnover's coefficient of variation (std / mean) over that span;
               the cap is cut by `volatility_penalty_bps` per unit of it, never below
               `min_volatility_factor_bps`
    history    days since the first report, over `full_history_days`, at most 1: a young
               merchant gets a proportional share
    target     cap x volatility factor x history factor; the factors are whole basis points
               and the target whole fen, each rounded down

The engine then keeps the limit within the policy range and never below what is used or held;
a frozen pool's limit may fall but not rise. Reports are judged on the engine's clock: a day
after today or before the window is refused (`turnover_day_out_of_window`), a day already
reported too (`turnover_already_reported`: a correction is not a second report), and a day's
turnover above `merchant.max_daily_fen` is `implausible_turnover`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from cloud_bridge.pool.policy import DAY_MS, Merchant, Policy
from cloud_bridge.pool.results import Result
from cloud_bridge.pool.state import DayTurnover, PoolState

BPS = 10_000


@dataclass(frozen=True)
class Review:
    """What a review found and the limit it aims at (before the engine's range and usage).
    `monthly_fen` is the trailing monthly turnover (scaled up for a history shorter than the
    window); `target_fen` is at most `max_turnover_bps` of it."""

    monthly_fen: int
    reported_days: int
    history_days: int
    cv_bps: int
    volatility_factor_bps: int
    history_factor_bps: int
    target_fen: int


def review(
    turnover: Sequence[DayTurnover], first_day: int, review_day: int, policy: Merchant
) -> Review:
    """The target limit on `review_day` from the turnover of the window before it."""
    # The window, cut to the days since the first report: a young merchant is not also
    # judged volatile for the days before it existed (its short history is damped below).
    start = max(review_day - policy.window_days, first_day)
    by_day = {t.day: t.turnover_fen for t in turnover if start <= t.day < review_day}
    daily = [by_day.get(day, 0) for day in range(start, review_day)]
    n, total = len(daily), sum(daily)
    monthly = total * policy.window_days // n if n else 0  # scaled up to a whole window
    cv_bps = 0
    if total:
        # n^2 x variance = n x sum(v^2) - total^2; cv = sqrt(that) / total, in basis points.
        spread = n * sum(v * v for v in daily) - total * total
        cv_bps = math.isqrt(spread * BPS * BPS) // total
    volatility = max(
        policy.min_volatility_factor_bps, BPS - cv_bps * policy.volatility_penalty_bps // BPS
    )
    history_days = max(0, review_day - first_day)
    history = min(BPS, history_days * BPS // policy.full_history_days)
    target = monthly * policy.max_turnover_bps * volatility * history // BPS**3
    return Review(monthly, len(by_day), history_days, cv_bps, volatility, history, target)


def report_refusal(
    state: PoolState, day: int, turnover_fen: int, now_ms: int, policy: Policy
) -> Result | None:
    """Why a turnover report is refused (a Result), or None to accept it."""
    today = now_ms // DAY_MS
    if not today - policy.merchant.window_days <= day <= today:
        return Result.TURNOVER_DAY_OUT_OF_WINDOW
    if any(t.day == day for t in state.turnover):
        return Result.TURNOVER_ALREADY_REPORTED
    if turnover_fen > policy.merchant.max_daily_fen:
        return Result.IMPLAUSIBLE_TURNOVER
    return None


def reported(
    state: PoolState, day: int, turnover_fen: int, now_ms: int, policy: Policy
) -> tuple[DayTurnover, ...]:
    """The turnover kept after accepting a report: the window's days only, oldest first."""
    kept = [*in_window(state.turnover, now_ms, policy), DayTurnover(day, turnover_fen)]
    return tuple(sorted(kept, key=lambda t: t.day))


def in_window(
    turnover: Sequence[DayTurnover], now_ms: int, policy: Policy
) -> tuple[DayTurnover, ...]:
    """The days a review or a report at `now_ms` may still look at (older ones are dropped)."""
    oldest = now_ms // DAY_MS - policy.merchant.window_days
    return tuple(t for t in turnover if t.day >= oldest)


def next_review_after(due_ms: int, now_ms: int, period_ms: int) -> int:
    """The first time on the review grid (due, due + period, ...) after `now_ms`."""
    if now_ms < due_ms:
        return due_ms
    return due_ms + ((now_ms - due_ms) // period_ms + 1) * period_ms

"""Seeded simulation of the pure engine against the reference model (no database, so it is fast
enough for thousands of steps). A failing seed replays exactly: the seed is in the test id.

The driver behaves like customers over years (monthly cycles, paying the minimum most months,
sometimes late, installment purchases, holds that expire), so it reaches raises, missed
payments and plan billing that short random sequences rarely do. Now and then one user's device
fires a burst of triggers within minutes (emergency draws, health goals, mileage claims), the
way a cloned key would, so the trigger limits are reached too.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from cloud_bridge.pool import commands as c
from cloud_bridge.pool.engine import decide
from cloud_bridge.pool.ledger import balances, expected_balances
from cloud_bridge.pool.state import PoolState
from cloud_bridge.pool.view import PoolView
from tests.pool.model import Model
from tests.pool.support import DAY, T0, TEST_POLICY

USERS = ["u1", "u2", "u3"]
MERCHANT = "u3"  # also a micro-merchant: its POS reports daily turnover


def command(rng: random.Random, model: Model, user: str, n: int, now: int) -> c.Command:
    key = f"k{n}"
    pool = model.pools.get(user)
    roll = rng.random()
    if pool is None or roll < 0.02:
        return c.OpenPool(user=user, key=key, limit_fen=rng.choice([10_000, 200_000, 900_000]))
    if user == MERCHANT and rng.random() < 0.15:  # a shop's POS: a report most days
        day = now // DAY - rng.choice([0, 0, 0, 1, 2, -1, 11])
        fen = rng.choice([rng.randint(0, 200_000), rng.randint(0, 20_000), 2_000_001])
        return c.ReportTurnover(user=user, key=key, day=day, turnover_fen=fen)
    if pool.holds and roll < 0.3:  # settle live holds soon, before most of them expire
        hold_id = rng.choice(sorted(pool.holds))
        if rng.random() < 0.8:
            return c.ConfirmHold(
                user=user,
                key=key,
                hold_id=hold_id,
                amount_fen=rng.choice([None, None, 150]),
                opt_out=rng.random() < 0.4,
            )
        return c.ReleaseHold(user=user, key=key, hold_id=hold_id)
    if roll < 0.30:
        return c.Repay(user=user, key=key, amount_fen=max(1, pool.due_left + rng.randint(0, 3_000)))
    if roll < 0.45:
        installments = rng.choice([0, 0, 3])
        amount = rng.choice([rng.randint(100, 30_000), rng.randint(50_000, 200_000)])
        emergency = (
            rng.choice([None, None, None, c.Emergency.DISASTER]) if not installments else None
        )
        return c.Draw(
            user=user,
            key=key,
            amount_fen=amount,
            installments=installments,
            emergency=emergency,
            up_to=not installments and rng.random() < 0.3,
        )
    if roll < 0.55:
        hold_id = rng.choice(["a", "b", "c", "d"])
        if rng.random() < 0.5:
            # A purchase at a shop is often large (TEST_POLICY: plans from 50,000 fen at shop-a).
            merchant = rng.choice(["", "", "shop-a", "shop-b"])
            large = merchant and rng.random() < 0.7
            return c.PlaceHold(
                user=user,
                key=key,
                hold_id=hold_id,
                amount_fen=rng.randint(50_000, 90_000) if large else rng.randint(100, 60_000),
                ttl_ms=rng.choice([None, 3 * DAY, 11 * DAY]),
                merchant=merchant,
            )
        if rng.random() < 0.7:
            return c.ConfirmHold(user=user, key=key, hold_id=hold_id)
        return c.ReleaseHold(user=user, key=key, hold_id=hold_id)
    if roll < 0.60:
        view = pool.view()
        owed = sum(
            int(view[k]) for k in ("interest_fen", "accrued_interest_fen", "outstanding_fen")
        )  # type: ignore[call-overload]
        return c.Repay(user=user, key=key, amount_fen=max(1, owed))
    if roll < 0.64:
        return rng.choice([c.Freeze, c.Unfreeze])(user=user, key=key)
    if roll < 0.66:
        return c.ClosePool(user=user, key=key)
    if roll < 0.70:
        km = rng.choice([rng.randint(0, 4_000), rng.randint(0, 40_000), 1_000_000])
        return c.ReportMileage(user=user, key=key, km_per_month=km)
    if roll < 0.73:
        return c.HealthGoalMet(user=user, key=key)
    if roll < 0.76:
        return c.LifeStage(user=user, key=key, event=rng.choice(list(c.LifeEvent)))
    if roll < 0.80:
        return c.SetLimit(user=user, key=key, limit_fen=rng.randint(5_000, 1_500_000))
    return c.Tick(user=user, key=key)


def next_step(rng: random.Random, cmd: c.Command, result: str, n: int) -> c.Command | None:
    """A shopper confirms a purchase at a shop a minute later (sometimes declining the plan);
    a POS that rebooted sends the day's turnover again, under a new key."""
    key = f"k{n}-next"
    if isinstance(cmd, c.PlaceHold) and cmd.merchant and result == "ok":
        return c.ConfirmHold(
            user=cmd.user, key=key, hold_id=cmd.hold_id, opt_out=rng.random() < 0.3
        )
    if isinstance(cmd, c.ReportTurnover) and result == "ok" and rng.random() < 0.2:
        return c.ReportTurnover(user=cmd.user, key=key, day=cmd.day, turnover_fen=1)
    return None


def trigger(rng: random.Random, user: str, n: int) -> c.Command:
    """One command of a burst of device triggers."""
    key = f"k{n}"
    roll = rng.random()
    if roll < 0.4:
        return c.Draw(
            user=user,
            key=key,
            amount_fen=rng.choice([100, rng.randint(100, 90_000), 2_000_000]),
            emergency=rng.choice(list(c.Emergency)),
            up_to=rng.random() < 0.5,
        )
    if roll < 0.75:
        return c.HealthGoalMet(user=user, key=key)
    return c.ReportMileage(user=user, key=key, km_per_month=rng.randint(0, 3_000))


@pytest.mark.parametrize("seed", range(6))
def test_engine_matches_model_over_years(seed: int) -> None:
    rng = random.Random(seed)
    model = Model(TEST_POLICY)
    states: dict[str, PoolState | None] = dict.fromkeys(USERS)
    journal: dict[str, list[dict]] = {u: [] for u in USERS}
    seen: Counter[str] = Counter()
    now = T0
    burst, user = 0, USERS[0]
    follow_up: c.Command | None = None
    for n in range(2_500):
        if follow_up is not None:  # the next step of what the last command began
            cmd, follow_up = follow_up, None
            user = cmd.user
            now += rng.choice([1_000, 60_000])
        elif burst:  # the same user's triggers, seconds to minutes apart
            burst -= 1
            now += rng.choice([0, 1_000, 60_000, 600_000])
            cmd = (
                trigger(rng, user, n)
                if model.pools.get(user)
                else command(rng, model, user, n, now)
            )
        else:
            now += rng.choice([0, 60_000, 3_600_000, 6 * 3_600_000, DAY, 3 * DAY])
            user = rng.choice(USERS)
            cmd = command(rng, model, user, n, now)
            if rng.random() < 0.02:
                burst = rng.randint(3, 16)
        expected = model.apply(cmd, now)
        decision = decide(states[user], cmd, now, TEST_POLICY)
        assert decision.result.value == expected, (seed, n, cmd)
        follow_up = next_step(rng, cmd, expected, n)
        states[user] = decision.state
        if decision.postings:
            journal[user].append(decision.postings)
        seen[f"{cmd.KIND}: {expected}"] += 1
        for event in decision.events:
            seen[event.kind] += 1
            if event.kind == "hold_confirmed":  # an automatic plan, or one the user declined
                seen["automatic plan"] += "plan_no" in event.data
                seen["plan opted out"] += "plan_opt_out" in event.data
        state = states[user]
        view = None if state is None else PoolView.of(state).to_json()
        assert view == model.view(user), (seed, n, cmd)
        if state is not None:
            got = balances(journal[user])
            for account, want in expected_balances(state).items():
                assert got[account] == want, (seed, n, account)
    for reached in (
        "limit_raised",
        "payment_missed",
        "hold_expired",
        "statement_closed",
        "draw: ok",
        "confirm: ok",
        "close: ok",
        "repay: ok",
        "draw: exceeds_credit",
        "draw: too_many_emergencies",
        "draw: exceeds_emergency_budget",
        "health: boost_cooldown",
        "health: too_many_boosts",
        "mileage: implausible_mileage",
        "mileage: ok",
        "rate_changed",
        "turnover: ok",
        "turnover: turnover_already_reported",
        "turnover: turnover_day_out_of_window",
        "turnover: implausible_turnover",
        "merchant_reviewed",
    ):
        assert seen[reached], f"seed {seed} never reached {reached}: {sorted(seen.items())}"

"""Seeded simulation of shoppers and shops against the reference model (pure engine, fast).

Shoppers with roomy pools buy at shops: a hold, confirmed a minute later, large purchases at the
eligible shop becoming plans unless the shopper opts out; they repay, get frozen now and then.
One of them is also a shop whose POS reports each day's turnover (sometimes twice, sometimes a
day late or for a day out of range), so its limit is reviewed every few days. After every step
the engine's view and ledger equal the model's, and the run must reach each of these rules.
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

SHOPPERS = ["s1", "s2", "shop"]  # "shop" is a merchant pool too


def shopping(rng: random.Random, model: Model, user: str, n: int, now: int) -> c.Command:
    key = f"k{n}"
    pool = model.pools.get(user)
    roll = rng.random()
    if pool is None:
        return c.OpenPool(user=user, key=key, limit_fen=rng.choice([400_000, 900_000]))
    if user == "shop" and roll < 0.4:
        day = now // DAY - rng.choice([0, 0, 0, 1, 1, 2, -1, 11])
        fen = rng.choice([rng.randint(20_000, 60_000), rng.randint(0, 300_000), 2_000_001])
        return c.ReportTurnover(user=user, key=key, day=day, turnover_fen=fen)
    if roll < 0.5:
        merchant = rng.choice(["shop-a", "shop-a", "shop-b", ""])
        amount = rng.choice([rng.randint(50_000, 120_000), rng.randint(100, 49_999)])
        return c.PlaceHold(
            user=user, key=key, hold_id=f"o{n}", amount_fen=amount, merchant=merchant
        )
    if roll < 0.8:
        owed = sum(
            int(pool.view()[k]) for k in ("interest_fen", "accrued_interest_fen", "outstanding_fen")
        )
        return c.Repay(user=user, key=key, amount_fen=max(1, owed // rng.choice([1, 2, 4])))
    if roll < 0.85:
        return rng.choice([c.Freeze, c.Unfreeze])(user=user, key=key)
    return c.Tick(user=user, key=key)


def confirm_next(rng: random.Random, cmd: c.Command, result: str, n: int) -> c.Command | None:
    if isinstance(cmd, c.PlaceHold) and result == "ok" and rng.random() < 0.9:
        partial = rng.choice([None, None, None, cmd.amount_fen // 2])
        return c.ConfirmHold(
            user=cmd.user,
            key=f"k{n}-c",
            hold_id=cmd.hold_id,
            amount_fen=partial or None,
            opt_out=rng.random() < 0.25,
        )
    if isinstance(cmd, c.ReportTurnover) and result == "ok" and rng.random() < 0.2:
        return c.ReportTurnover(user=cmd.user, key=f"k{n}-r", day=cmd.day, turnover_fen=1)
    return None


@pytest.mark.parametrize("seed", range(4))
def test_shoppers_and_shops_match_the_model(seed: int) -> None:
    rng = random.Random(seed)
    model = Model(TEST_POLICY)
    states: dict[str, PoolState | None] = dict.fromkeys(SHOPPERS)
    journal: dict[str, list[dict]] = {u: [] for u in SHOPPERS}
    seen: Counter[str] = Counter()
    now, follow_up = T0, None
    for n in range(1_500):
        if follow_up is not None:
            cmd, follow_up = follow_up, None
            now += 60_000
        else:
            now += rng.choice([60_000, 3_600_000, 8 * 3_600_000, DAY])
            cmd = shopping(rng, model, rng.choice(SHOPPERS), n, now)
        user = cmd.user
        expected = model.apply(cmd, now)
        decision = decide(states[user], cmd, now, TEST_POLICY)
        assert decision.result.value == expected, (seed, n, cmd)
        follow_up = confirm_next(rng, cmd, expected, n)
        states[user] = decision.state
        if decision.postings:
            journal[user].append(decision.postings)
        seen[f"{cmd.KIND}: {expected}"] += 1
        for event in decision.events:
            seen[event.kind] += 1
            if event.kind == "hold_confirmed":
                seen["automatic plan"] += "plan_no" in event.data
                seen["plan opted out"] += "plan_opt_out" in event.data
            if event.kind == "limit_changed" and event.data["why"] == "merchant_review":
                seen["limit follows turnover"] += 1
        state = states[user]
        assert (None if state is None else PoolView.of(state).to_json()) == model.view(user)
        if state is not None:
            got = balances(journal[user])
            for account, want in expected_balances(state).items():
                assert got[account] == want, (seed, n, account)
    for reached in (
        "automatic plan",
        "plan opted out",
        "confirm: ok",
        "turnover: ok",
        "turnover: turnover_already_reported",
        "turnover: turnover_day_out_of_window",
        "turnover: implausible_turnover",
        "merchant_reviewed",
        "limit follows turnover",
        "statement_closed",
    ):
        assert seen[reached], f"seed {seed} never reached {reached}: {sorted(seen.items())}"

"""Automatic installments: a large confirmed purchase at an eligible merchant becomes a plan."""

from __future__ import annotations

import dataclasses

import pytest

from cloud_bridge.pool import commands as c
from cloud_bridge.pool.engine import decide
from cloud_bridge.pool.errors import InvalidCommand, PolicyError
from cloud_bridge.pool.ledger import Account, unbalanced
from cloud_bridge.pool.policy import Installments, Policy, load_policy, policy_from_mapping
from cloud_bridge.pool.results import Result
from cloud_bridge.pool.state import PoolState
from tests.pool.support import DAY, T0

DEFAULT = Policy()  # plans of 12 periods from 5,000 yuan (500,000 fen), every merchant eligible
SHOPS = Policy(installments=Installments(eligible_merchants=("shop-a",)))


def held(policy: Policy, amount: int, merchant: str) -> PoolState:
    s = decide(None, c.OpenPool(user="u", key="o", limit_fen=2_000_000), T0, policy).state
    d = decide(
        s,
        c.PlaceHold(user="u", key="h", hold_id="order-1", amount_fen=amount, merchant=merchant),
        T0,
        policy,
    )
    assert d.result is Result.OK and d.state is not None
    return d.state


def confirm(s: PoolState, policy: Policy, **kw: object):
    d = decide(s, c.ConfirmHold(user="u", key="c", hold_id="order-1", **kw), T0 + 1, policy)  # type: ignore[arg-type]
    assert d.result is Result.OK and d.state is not None
    assert unbalanced(d.postings or {}) == []
    return d


def test_a_6000_yuan_purchase_at_a_merchant_becomes_a_12_period_zero_rate_plan() -> None:
    d = confirm(held(DEFAULT, 600_000, "shop-a"), DEFAULT)
    assert [(p.plan_no, p.principal_fen, p.periods_left) for p in d.state.plans] == [
        (1, 600_000, 12)
    ]
    assert d.state.principal_fen == 0 and d.state.held_fen == 0
    assert d.postings == {
        Account.HELD: -600_000,
        Account.DRAWN: 600_000,
        Account.INSTALLMENT: 600_000,
        Account.SETTLEMENT: -600_000,
    }
    (event,) = d.events
    assert event.kind == "hold_confirmed"
    assert event.data == {
        "hold_id": "order-1",
        "amount_fen": 600_000,
        "released_fen": 0,
        "plan_no": 1,
        "periods": 12,
    }


def test_the_plan_bears_no_interest_and_bills_one_twelfth_per_statement() -> None:
    s = confirm(held(DEFAULT, 600_000, "shop-a"), DEFAULT).state
    d = decide(s, c.Tick(user="u", key="t"), T0 + 30 * DAY, DEFAULT)
    assert d.state is not None
    assert (d.state.interest_fen, d.state.accrued_fen, d.state.min_due_fen) == (0, 0, 50_000)


@pytest.mark.parametrize(
    ("policy", "amount", "merchant", "confirm_fen", "opt_out", "why"),
    [
        (DEFAULT, 600_000, "shop-a", None, True, "the user opted out"),
        (DEFAULT, 499_999, "shop-a", None, False, "one fen below the threshold"),
        (DEFAULT, 600_000, "", None, False, "no merchant named"),
        (DEFAULT, 600_000, "shop-a", 400_000, False, "confirmed part is below the threshold"),
        (SHOPS, 600_000, "shop-b", None, False, "merchant not on the eligible list"),
        (
            Policy(installments=Installments(automatic=0)),
            600_000,
            "shop-a",
            None,
            False,
            "automatic plans turned off",
        ),
    ],
)
def test_no_automatic_plan(
    policy: Policy,
    amount: int,
    merchant: str,
    confirm_fen: int | None,
    opt_out: bool,
    why: str,
) -> None:
    d = confirm(held(policy, amount, merchant), policy, amount_fen=confirm_fen, opt_out=opt_out)
    taken = amount if confirm_fen is None else confirm_fen
    assert d.state.plans == (), why
    assert d.state.principal_fen == taken, why
    assert ("plan_opt_out" in d.events[0].data) is opt_out, why


def test_exactly_the_threshold_at_a_listed_merchant_is_a_plan() -> None:
    d = confirm(held(SHOPS, 500_000, "shop-a"), SHOPS)
    assert [p.principal_fen for p in d.state.plans] == [500_000]


def test_an_opt_out_confirm_is_a_different_request_from_a_plain_one() -> None:
    plain = c.ConfirmHold(user="u", key="c", hold_id="h")
    assert "opt_out" not in plain.to_json()  # old records keep their fingerprint
    assert c.ConfirmHold(user="u", key="c", hold_id="h", opt_out=True).fingerprint() != (
        plain.fingerprint()
    )
    assert "merchant" not in c.PlaceHold(user="u", key="k", hold_id="h", amount_fen=1).to_json()


@pytest.mark.parametrize("bad", ["shop a", "x" * 65, 7])
def test_a_bad_merchant_is_refused(bad: object) -> None:
    with pytest.raises(InvalidCommand, match="merchant"):
        c.PlaceHold(user="u", key="k", hold_id="h", amount_fen=1, merchant=bad)  # type: ignore[arg-type]


def test_the_merchant_survives_the_state_json_round_trip() -> None:
    s = held(DEFAULT, 600_000, "shop-a")
    assert PoolState.from_json(s.to_json()) == s
    plain = dataclasses.replace(s, holds=(dataclasses.replace(s.holds[0], merchant=""),))
    assert "merchant" not in plain.to_json()["holds"][0]


def test_eligible_merchants_loads_from_toml_and_bad_entries_name_the_key(tmp_path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[installments]\neligible_merchants = ["shop-a", "shop-b"]\n')
    assert load_policy(path).installments.eligible_merchants == ("shop-a", "shop-b")
    with pytest.raises(PolicyError, match=r"installments\.eligible_merchants.*fix:"):
        policy_from_mapping({"installments": {"eligible_merchants": ["no spaces please"]}})
    with pytest.raises(PolicyError, match=r"installments\.automatic"):
        policy_from_mapping({"installments": {"automatic": 2}})

"""Policy: defaults, TOML round trip, and errors that name the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud_bridge.pool.errors import PolicyError
from cloud_bridge.pool.policy import Policy, describe, load_policy, to_toml


def test_default_policy_and_generated_toml_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(to_toml())
    assert load_policy(path) == Policy() == load_policy(None)
    keys = [k for k, _, _ in describe()]
    assert "raises.after_on_time_cycles" in keys and "statement.grace_days" in keys


def test_partial_file_keeps_other_defaults(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(
        "[raises]\nafter_on_time_cycles = 3\n\n"
        "[[rates.tiers]]\nmin_km_per_month = 0\nrate_bps = 900\n"
    )
    policy = load_policy(path)
    assert policy.raises.after_on_time_cycles == 3
    assert policy.raises.step_bps == Policy().raises.step_bps
    assert policy.rates.for_mileage(10_000) == 900


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("[limits]\nmin_fen = 100.5\n", ["'limits.min_fen'", "integer", "fen"]),
        ('[limits]\nmin_fen = "100"\n', ["'limits.min_fen'", "integer"]),
        ("[limits]\nmin_fen = true\n", ["'limits.min_fen'", "integer"]),
        ("[statement]\nmin_payment_bps = 10001\n", ["'statement.min_payment_bps'", "0..10000"]),
        ("[statement]\ngrace_days = 30\n", ["'statement.grace_days'", "fix"]),
        ("[limits]\nmin_fen = 5\nmax_fen = 4\n", ["'limits.min_fen'", "fix"]),
        ("[limits]\nminimum = 5\n", ["'limits.minimum' is unknown", "min_fen"]),
        ("[limit]\nmin_fen = 5\n", ["unknown section [limit]", "[limits]"]),
        ("limits = 5\n", ["'limits' must be a table"]),
        (
            "[[rates.tiers]]\nmin_km_per_month = 10\nrate_bps = 1\n",
            ["'rates.tiers'", "the first 0"],
        ),
        (
            "[[rates.tiers]]\nmin_km_per_month = 0\nrate_bps = 1\n"
            "[[rates.tiers]]\nmin_km_per_month = 0\nrate_bps = 2\n",
            ["ascending"],
        ),
        ("[[rates.tiers]]\nmin_km = 0\nrate_bps = 1\n", ["'rates.tiers[0]'"]),
        ("[holds]\ndefault_ttl_ms = 10\nmax_ttl_ms = 5\n", ["'holds.default_ttl_ms'"]),
        ("[limits\n", ["not valid TOML"]),
        ("[mileage]\nmax_km_per_day = 0\n", ["'mileage.max_km_per_day'", "1..10000000", "fix"]),
        ("[emergency]\nmax_per_day = -1\n", ["'emergency.max_per_day'", "0..10000"]),
        ("[health]\ncooldown_ms = 1.5\n", ["'health.cooldown_ms'", "integer", "fix"]),
    ],
)
def test_bad_policy_names_the_key_and_the_fix(tmp_path: Path, text: str, names: list[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    message = str(info.value)
    assert str(path) in message
    for name in names:
        assert name in message


def test_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read policy file"):
        load_policy(tmp_path / "nope.toml")


def test_schema__one_declaration_feeds_describe_loading_and_the_constructor(
    tmp_path: Path,
) -> None:
    from cloud_bridge.pool.policy import SCHEMA, Limits, Rates, RateTier

    keys = [f"{section}.{key}" for section, body in SCHEMA.items() for key in body]
    lists = ("rates.tiers", "installments.eligible_merchants")  # not scalars: to_toml writes them
    assert [k for k in keys if k not in lists] == [k for k, _, _ in describe()]
    path = tmp_path / "p.toml"
    path.write_text("[limits]\nmin_fen = 0\n")
    with pytest.raises(PolicyError) as loaded:
        load_policy(path)
    with pytest.raises(PolicyError) as built:
        Limits(min_fen=0)
    assert str(loaded.value) == f"{path}: {built.value}"
    assert "'limits.min_fen' must be 1..1000000000000000" in str(built.value)
    with pytest.raises(PolicyError, match=r"'rates.tiers\[1\].rate_bps' must be an integer"):
        Rates(tiers=(RateTier(0, 100), RateTier(10, -1)))

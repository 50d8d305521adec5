"""Commands validate themselves; JSON round trips; fingerprints tell requests apart."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud_bridge.pool import commands as c
from cloud_bridge.pool.errors import InvalidCommand

ids = st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True)
keys = st.from_regex(r"[\x21-\x7e]{1,128}", fullmatch=True)


@given(
    user=ids,
    key=keys,
    amount=st.integers(1, 10**15),
    hold=ids,
    ttl=st.none() | st.integers(1, 10**12),
)
def test_json_round_trip(user: str, key: str, amount: int, hold: str, ttl: int | None) -> None:
    for cmd in (
        c.Draw(user=user, key=key, amount_fen=amount, emergency=c.Emergency.EDUCATION),
        c.PlaceHold(user=user, key=key, hold_id=hold, amount_fen=amount, ttl_ms=ttl),
        c.LifeStage(user=user, key=key, event=c.LifeEvent.MARRIAGE),
        c.Tick(user=user, key=key),
    ):
        assert c.from_json(cmd.to_json()) == cmd
        assert c.from_json(cmd.to_json()).fingerprint() == cmd.fingerprint()


def test_fingerprint_differs_when_any_field_differs() -> None:
    a = c.Draw(user="u", key="k", amount_fen=100)
    assert a.fingerprint() != c.Draw(user="u", key="k", amount_fen=101).fingerprint()
    assert a.fingerprint() != c.Repay(user="u", key="k", amount_fen=100).fingerprint()


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: c.Draw(user="", key="k", amount_fen=1), "user"),
        (lambda: c.Draw(user="a" * 65, key="k", amount_fen=1), "user"),
        (lambda: c.Draw(user="a b", key="k", amount_fen=1), "user"),
        (lambda: c.Draw(user="u", key="", amount_fen=1), "key"),
        (lambda: c.Draw(user="u", key="has space", amount_fen=1), "key"),
        (lambda: c.Draw(user="u", key="k", amount_fen=0), "amount_fen"),
        (lambda: c.Draw(user="u", key="k", amount_fen=-5), "amount_fen"),
        (lambda: c.Draw(user="u", key="k", amount_fen=1.5), "integer"),
        (lambda: c.Draw(user="u", key="k", amount_fen=True), "integer"),
        (lambda: c.Draw(user="u", key="k", amount_fen=10**16), "amount_fen"),
        (lambda: c.Draw(user="u", key="k", amount_fen=1, emergency="flood"), "emergency"),
        (
            lambda: c.Draw(user="u", key="k", amount_fen=1, installments=12, emergency="illness"),
            "emergency",
        ),
        (lambda: c.OpenPool(user="u", key="k", limit_fen=1, rate_bps=10_001), "rate_bps"),
        (lambda: c.PlaceHold(user="u", key="k", hold_id="", amount_fen=1), "hold_id"),
        (lambda: c.Freeze(user="u", key="k", reason="Bad Reason"), "reason"),
        (lambda: c.LifeStage(user="u", key="k", event="divorce"), "event"),
        (lambda: c.from_json({"kind": "steal", "user": "u", "key": "k"}), "unknown command"),
        (lambda: c.from_json({"kind": "draw", "user": "u", "key": "k"}), "draw"),
    ],
)
def test_invalid_commands(make: object, match: str) -> None:
    with pytest.raises(InvalidCommand, match=match):
        make()  # type: ignore[operator]

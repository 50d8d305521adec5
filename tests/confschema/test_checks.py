"""confschema.checks: each check accepts what it should, refuses the rest, and is idempotent."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from confschema import (
    Invalid,
    boolean,
    choice,
    integer,
    matching,
    mqtt_url,
    number,
    path,
    text,
)

not_numbers = st.one_of(st.booleans(), st.text(max_size=5), st.none(), st.lists(st.integers()))


@given(st.data(), st.integers(-(10**6), 10**6), st.integers(0, 10**6))
def test_integer__valid(data: st.DataObject, lo: int, span: int) -> None:
    value = data.draw(st.integers(lo, lo + span))
    check = integer(lo, lo + span)
    assert check(value) == value and check(check(value)) == value


@given(st.integers(-100, 100), st.integers(-100, 100))
def test_integer__invalid_outside_the_range(lo: int, value: int) -> None:
    hi = lo + 10
    assume(not lo <= value <= hi)
    with pytest.raises(Invalid) as err:
        integer(lo, hi)(value)
    assert err.value.reason == f"must be an integer from {lo} to {hi}"


@given(st.one_of(not_numbers, st.floats(0, 10)))
def test_integer__invalid_types(value: Any) -> None:
    with pytest.raises(Invalid):
        integer(0, 10)(value)


@given(st.one_of(st.integers(0, 10), st.floats(0, 10)))
def test_number__valid_as_float(value: float) -> None:
    out = number(0, 10)(value)
    assert type(out) is float and out == value and number(0, 10)(out) == out


@given(st.one_of(not_numbers, st.floats(10.001, 1e9), st.integers(max_value=-1)))
def test_number__invalid(value: Any) -> None:
    with pytest.raises(Invalid, match="must be a number from 0 to 10"):
        number(0, 10)(value)


def test_choice__valid_and_invalid_lists_the_values_in_order() -> None:
    check = choice("phone", "ev")
    assert check("ev") == "ev"
    for bad in ("toaster", ["ev"], None, 1):
        with pytest.raises(Invalid) as err:
            check(bad)
        assert err.value.reason == "must be one of phone, ev"


@given(st.from_regex(r"[a-z]{1,8}", fullmatch=True))
def test_matching__valid(value: str) -> None:
    assert matching(re.compile(r"[a-z]{1,8}"), "1-8 small letters")(value) == value


@pytest.mark.parametrize("value", ["", "A", "abcdefghi", "a b", 5, None])
def test_matching__invalid(value: Any) -> None:
    with pytest.raises(Invalid) as err:
        matching(re.compile(r"[a-z]{1,8}"), "1-8 small letters")(value)
    assert err.value.reason == "must be 1-8 small letters"


def test_matching__allow_empty() -> None:
    check = matching(re.compile(r"[a-z]{1,8}"), "1-8 small letters", allow_empty=True)
    assert check("") == ""
    with pytest.raises(Invalid, match="must be 1-8 small letters or empty"):
        check("A")


@pytest.mark.parametrize(
    "value", ["mqtt://127.0.0.1:1883", "mqtts://broker.example:8883", "mqtt://host"]
)
def test_mqtt_url__valid(value: str) -> None:
    assert mqtt_url(value) == value


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("http://x", "must look like mqtt://host:1883"),
        ("mqtt://", "must look like mqtt://host:1883"),
        ("mqtt://x:port", "has a port that is not a number"),
        ("mqtt://x:99999", "has a port that is not a number"),
        (1883, "must be a string"),
    ],
)
def test_mqtt_url__invalid(value: Any, reason: str) -> None:
    with pytest.raises(Invalid, match=reason):
        mqtt_url(value)


def test_text_path_boolean__valid_and_invalid() -> None:
    assert (text(""), path("a/b"), boolean(False)) == ("", "a/b", False)
    for check, bad, reason in (
        (text, 5, "must be a string"),
        (path, "", "must be a non-empty path string"),
        (boolean, 1, "must be true or false"),
        (boolean, "true", "must be true or false"),
    ):
        with pytest.raises(Invalid) as err:
            check(bad)
        assert err.value.reason == reason

"""confschema.schema: reading TOML against declared keys, the typed problems, docs and files."""

from __future__ import annotations

import dataclasses
import tomllib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from confschema import (
    REQUIRED,
    Fault,
    Invalid,
    Key,
    Problem,
    Schema,
    SchemaError,
    check_fields,
    choice,
    describe,
    integer,
    key_field,
    keys_of,
    read_document,
    read_section,
    text,
    to_toml,
    toml_value,
)


def _tiers(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list | tuple):
        raise Invalid("must be a list", fix="tiers = [1, 2]")
    for i, item in enumerate(value):
        if type(item) is not int:
            raise Invalid("must be whole numbers", at=f"[{i}]")
    return tuple(value)


SCHEMA: Schema = {
    "device": {
        "id": Key(REQUIRED, text, 'id = "rig-01"'),
        "kind": Key("phone", choice("phone", "ev"), help="what the device is"),
    },
    "mqtt": {
        "keepalive_s": Key(30, integer(5, 3600), help="seconds between pings"),
        "tiers": Key([500, 1500], _tiers),
    },
}


def problem(doc: dict[str, Any]) -> Problem:
    with pytest.raises(SchemaError) as err:
        read_document(doc, SCHEMA)
    assert str(err.value) == err.value.problem.message()
    return err.value.problem


def test_read_document__valid_fills_and_checks_defaults() -> None:
    values = read_document({"device": {"id": "rig-01"}, "mqtt": {"keepalive_s": 60}}, SCHEMA)
    assert values == {
        "device": {"id": "rig-01", "kind": "phone"},
        "mqtt": {"keepalive_s": 60, "tiers": (500, 1500)},
    }


def test_read_document__invalid_value_names_section_key_value_and_example() -> None:
    found = problem({"device": {"id": "a"}, "mqtt": {"keepalive_s": 2}})
    assert found == Problem(
        Fault.INVALID,
        "mqtt",
        "[mqtt]",
        key="keepalive_s",
        value=2,
        reason="must be an integer from 5 to 3600",
        fix="keepalive_s = 30",
    )
    assert found.message() == (
        "[mqtt] keepalive_s = 2 must be an integer from 5 to 3600; for example: keepalive_s = 30"
    )


def test_read_document__invalid_part_of_a_value_and_the_checks_own_fix() -> None:
    at = problem({"device": {"id": "a"}, "mqtt": {"tiers": [1, "x"]}})
    assert (at.key, at.fix) == ("tiers[1]", "tiers = [500, 1500]")
    fix = problem({"device": {"id": "a"}, "mqtt": {"tiers": 5}})
    assert fix.message() == "[mqtt] tiers = 5 must be a list; for example: tiers = [1, 2]"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({}, '[device] id is required; add: id = "rig-01"'),
        ({"device": 5}, "[device] must be a table"),
        (
            {"device": {"id": "a", "zeta": 1, "colour": 2}},
            "[device] colour: unknown key; known: id, kind",
        ),
        (
            {"device": {"id": "a"}, "mqttt": {}, "b": {}},
            "unknown section [b]; sections: device, mqtt",
        ),
        (
            {"device": {"id": "a", "kind": "fridge"}},
            "[device] kind = 'fridge' must be one of phone, ev; for example: kind = \"phone\"",
        ),
    ],
)
def test_read_document__invalid_documents(doc: dict[str, Any], message: str) -> None:
    assert problem(doc).message() == message


def test_read_document__other_sections_are_left_to_the_caller() -> None:
    values = read_document({"device": {"id": "a"}, "triggers": [1]}, SCHEMA, other=("triggers",))
    assert set(values) == {"device", "mqtt"}
    with pytest.raises(SchemaError) as err:
        read_document({"x": {}}, SCHEMA, other=("triggers",))
    assert err.value.problem.known == ("device", "mqtt", "triggers")


def test_read_section__label_for_an_array_of_tables() -> None:
    with pytest.raises(SchemaError) as err:
        read_section({"id": "a", "kind": 1}, SCHEMA["device"], "rule", "[[rule]] a")
    assert err.value.problem.section == "rule"
    assert err.value.problem.message().startswith("[[rule]] a kind = 1 must be one of")


def test_key__required_has_no_value() -> None:
    assert Key(REQUIRED, text).required
    with pytest.raises(LookupError):
        _ = Key(REQUIRED, text).value
    assert Key([1], _tiers).value == (1,)


@dataclasses.dataclass(frozen=True)
class Section:
    count: int = key_field(Key(3, integer(0, 9), help="how many"))
    label: str = "plain field, no key"

    def __post_init__(self) -> None:
        check_fields(self, "section")


def test_key_field__default_docs_and_constructor_checks_from_one_declaration() -> None:
    assert Section().count == 3
    assert list(keys_of(Section)) == ["count"]
    assert keys_of(Section)["count"].help == "how many"
    with pytest.raises(SchemaError) as err:
        Section(count=10)
    assert err.value.problem.message() == (
        "[section] count = 10 must be an integer from 0 to 9; for example: count = 3"
    )


def test_describe__every_key_in_order() -> None:
    entries = list(describe(SCHEMA))
    assert [(e.section, e.key, e.required) for e in entries] == [
        ("device", "id", True),
        ("device", "kind", False),
        ("mqtt", "keepalive_s", False),
        ("mqtt", "tiers", False),
    ]
    assert entries[2].default == 30 and entries[2].help == "seconds between pings"


def test_to_toml__loads_back_to_the_defaults_once_required_keys_are_filled() -> None:
    generated = to_toml(SCHEMA)
    assert '# id = "rig-01"  (required)' in generated
    assert "keepalive_s = 30  # seconds between pings" in generated
    doc = tomllib.loads(generated.replace('# id = "rig-01"  (required)', 'id = "rig-01"'))
    assert read_document(doc, SCHEMA) == read_document({"device": {"id": "rig-01"}}, SCHEMA)


toml_scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(),
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), inner, max_size=4),
    ),
    max_leaves=10,
)


@given(toml_values)
def test_toml_value__valid_round_trips_through_tomllib(value: Any) -> None:
    assert tomllib.loads(f"x = {toml_value(value)}")["x"] == value


def test_toml_value__invalid() -> None:
    with pytest.raises(TypeError):
        toml_value(object())

"""protocol.names: the one id pattern and the one list of device kinds, and who imports them."""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from protocol import names

ID_CHARS = string.ascii_letters + string.digits + "._-"
ids = st.text(alphabet=ID_CHARS, min_size=1, max_size=64)


@given(ids)
def test_is_id__valid(value: str) -> None:
    assert names.is_id(value)


@given(
    st.one_of(
        st.just(""),
        st.text(alphabet=ID_CHARS, min_size=65, max_size=80),
        st.tuples(ids, st.characters(blacklist_characters=ID_CHARS), ids).map("".join),
        st.integers(),
        st.none(),
        st.binary(min_size=1, max_size=8),
    )
)
def test_is_id__invalid(value: object) -> None:
    assert not names.is_id(value)


def test_is_device_id__invalid_for_the_reserved_branches() -> None:
    assert [v for v in ("pool", "risk", "bridge", "rig-01") if not names.is_device_id(v)] == [
        "pool",
        "risk",
        "bridge",
    ]
    assert not names.is_device_id("rig/01")


def test_share_group__is_an_id_without_dots() -> None:
    assert names.SHARE_GROUP_PATTERN.fullmatch("bridges_1-a")
    assert not names.SHARE_GROUP_PATTERN.fullmatch("bridges.1")


def test_device_kinds__the_wire_adds_only_the_firmware_to_the_agent_kinds() -> None:
    assert names.DEVICE_KINDS - set(names.AGENT_KINDS) == {"mcu", "merchant"}
    assert names.AGENT_KINDS == ("phone", "wearable", "fridge", "ev")  # order seeds the simulator


def test_device_kinds__every_user_imports_the_one_definition() -> None:
    from agent import config
    from agent.simulator import profiles
    from protocol import messages
    from tools.fleet import plan

    assert config.DEVICE_KINDS is names.AGENT_KINDS
    assert profiles.DEVICE_KINDS is names.AGENT_KINDS
    assert messages.DEVICE_KINDS is names.DEVICE_KINDS
    assert plan.KINDS is names.AGENT_KINDS
    assert set(profiles.PROFILES) == set(names.AGENT_KINDS)

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import topics
from protocol.errors import ProtocolError, Reason
from protocol.topics import Channel, Topic

ids = st.text(alphabet="ABCXYZabcxyz0189._-", min_size=1, max_size=64)
device_ids = ids.filter(lambda s: s not in topics.RESERVED_DEVICE_IDS)


def test_build__every_branch_of_the_tree() -> None:
    assert topics.device("f1", "d1", Channel.REPORT) == "cp/v1/f1/d1/report"
    assert topics.device("f1", "d1", Channel.ACK) == "cp/v1/f1/d1/ack"
    assert topics.device("f1", "d1", Channel.APPLICATION) == "cp/v1/f1/d1/application"
    assert topics.command("f1", "d1", "ping") == "cp/v1/f1/d1/cmd/ping"
    assert topics.pool("f1", "u-7", Channel.POOL_STATE) == "cp/v1/f1/pool/u-7/state"
    assert topics.pool("f1", "u-7", Channel.POOL_DECISION) == "cp/v1/f1/pool/u-7/decision"
    assert topics.risk("f1", "d1") == "cp/v1/f1/risk/d1"
    assert topics.bridge_state("f1") == "cp/v1/f1/bridge/state"


@given(
    fleet=ids, device=device_ids, channel=st.sampled_from([*topics.DEVICE_CHANNELS, Channel.ACK])
)
def test_parse__round_trips_device_topics(fleet: str, device: str, channel: Channel) -> None:
    assert topics.parse(topics.device(fleet, device, channel)) == Topic(
        channel, fleet, device=device
    )


@given(fleet=ids, user=ids, channel=st.sampled_from([Channel.POOL_STATE, Channel.POOL_DECISION]))
def test_parse__round_trips_pool_topics(fleet: str, user: str, channel: Channel) -> None:
    assert topics.parse(topics.pool(fleet, user, channel)) == Topic(channel, fleet, user=user)


@given(fleet=ids, device=device_ids, name=ids)
def test_parse__round_trips_commands_and_risk(fleet: str, device: str, name: str) -> None:
    parsed = topics.parse(topics.command(fleet, device, name))
    assert (parsed.channel, parsed.device, parsed.command) == (Channel.CMD, device, name)
    assert topics.parse(topics.risk(fleet, device)) == Topic(Channel.RISK, fleet, device=device)
    assert topics.parse(topics.bridge_state(fleet)) == Topic(Channel.BRIDGE_STATE, fleet)


@pytest.mark.parametrize(
    "bad",
    ["", "+", "#", "a/b", "a\x00b", "x" * 65, "dévice", "a b", "a+", "#a", "\u6c34"],
)
def test_ids__invalid(bad: str) -> None:
    with pytest.raises(ProtocolError) as err:
        topics.device("fleet", bad, Channel.REPORT)
    assert err.value.reason is Reason.BAD_ID
    with pytest.raises(ProtocolError):
        topics.pool(bad, "user", Channel.POOL_STATE)


def test_ids__64_bytes_is_the_limit() -> None:
    assert topics.device("f", "x" * 64, Channel.BIRTH).endswith("/" + "x" * 64 + "/birth")


@pytest.mark.parametrize("reserved", sorted(topics.RESERVED_DEVICE_IDS))
def test_device_ids__reserved_names_are_refused(reserved: str) -> None:
    with pytest.raises(ProtocolError) as err:
        topics.device("f", reserved, Channel.REPORT)
    assert err.value.reason is Reason.BAD_ID


@pytest.mark.parametrize(
    "bad",
    [
        "cp/v1/f/d",
        "cp/v2/f/d/report",
        "xx/v1/f/d/report",
        "cp/v1/f/d/reports",
        "cp/v1/f/d/cmd",
        "cp/v1/f/d/cmd/a/b",
        "cp/v1/f/pool/u/balance",
        "cp/v1/f/pool/state",
        "cp/v1/f/bridge/status",
        "cp/v1/f/risk/d/x",
        "cp/v1/f/+/report",
        "cp/v1/#",
        "cp/v1/f/d/report/",
        "/cp/v1/f/d/report",
        "cp/v1/f//report",
    ],
)
def test_parse__invalid(bad: str) -> None:
    with pytest.raises(ProtocolError) as err:
        topics.parse(bad)
    assert err.value.reason in (Reason.BAD_TOPIC, Reason.BAD_ID)


def test_ingest_filters__plain_and_shared() -> None:
    assert topics.ingest_filters("f") == [
        "cp/v1/f/+/birth",
        "cp/v1/f/+/death",
        "cp/v1/f/+/report",
        "cp/v1/f/+/trigger",
        "cp/v1/f/+/enroll",
        "cp/v1/f/+/application",
    ]
    assert (
        topics.ingest_filters(None, share_group="bridges")[2] == "$share/bridges/cp/v1/+/+/report"
    )
    with pytest.raises(ProtocolError):
        topics.ingest_filters("f", share_group="a/b")


def test_device_inbox_filters() -> None:
    assert topics.device_inbox_filters("f", "d") == [
        "cp/v1/f/d/ack",
        "cp/v1/f/d/cmd/+",
        "cp/v1/f/bridge/state",
    ]

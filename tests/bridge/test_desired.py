"""Desired configuration: the pure decisions (cloud_bridge.desired) and their SQL (store)."""

from __future__ import annotations

import pytest

from cloud_bridge import desired
from cloud_bridge.desired import DesiredError, DeviceConfig
from cloud_bridge.store import desired_repo, open_store
from protocol.messages import CONFIG_VERSION_ARG, REMOTE_CONFIG_KEYS

ROW = DeviceConfig("phone-1", 3, {"report.interval_s": 30}, 1, 77, 3)


@pytest.mark.parametrize(
    ("row", "reported", "send"),
    [
        (None, 0, False),  # no desired state at all
        (DeviceConfig("phone-1"), 0, False),  # a row made by a birth, nothing desired
        (ROW, 1, True),  # behind
        (ROW, 0, True),  # never applied one (a fresh or reset device)
        (ROW, 4, True),  # ahead (a restored database): the desired state wins
        (ROW, 3, False),  # converged
    ],
)
def test_must_send(row: DeviceConfig | None, reported: int, send: bool) -> None:
    assert desired.must_send(row, reported) is send


def test_command_args_carry_the_whole_state_and_its_version() -> None:
    assert desired.command_args(ROW) == {"report.interval_s": 30, CONFIG_VERSION_ARG: 3}


@pytest.mark.parametrize(
    ("seq", "result", "confirmed"),
    [(77, "ok", 3), (76, "ok", None), (77, "refused: x", None), (0, "ok", None)],
)
def test_confirmed_version(seq: int, result: str, confirmed: int | None) -> None:
    assert desired.confirmed_version(ROW, seq, result) == confirmed
    assert desired.confirmed_version(None, seq, result) is None


def test_parse_assignments__valid() -> None:
    base = {"report.interval_s": 30, "sensors.day_s": 60}
    out = desired.parse_assignments(
        ["report.interval_s=5", "sensors.day_s=", "outbox.max_messages=1000"], base
    )
    assert out == {"report.interval_s": 5, "outbox.max_messages": 1000}
    assert base == {"report.interval_s": 30, "sensors.day_s": 60}  # not changed in place


@pytest.mark.parametrize("item", ["interval=5", "report.interval_s", "Report.x=1", ".x=1", "=1"])
def test_parse_assignments__invalid(item: str) -> None:
    with pytest.raises(DesiredError, match=r"section\.key=value"):
        desired.parse_assignments([item], {})


@pytest.mark.parametrize("item", ["x.flag=true", "report.url=x", "bridge.key=1", "x.name="])
def test_parse_assignments__a_key_the_agent_refuses_is_refused_here(item: str) -> None:
    """Review finding 11: every key outside the agent's remote keys was accepted, stored,
    sent, and refused by the agent ("cannot be set remotely") as drift forever."""
    with pytest.raises(DesiredError, match=r"cannot be set remotely.*report\.interval_s"):
        desired.parse_assignments([item], {})


@pytest.mark.parametrize(
    "item", ["report.interval_s=true", "report.interval_s=abc", "sensors.day_s=1.5"]
)
def test_parse_assignments__a_remote_key_takes_a_whole_number(item: str) -> None:
    with pytest.raises(DesiredError, match="whole number"):
        desired.parse_assignments([item], {})


def test_the_remote_keys_are_the_agents() -> None:
    """One definition: what the bridge accepts is exactly what the agent's config command
    takes (agent.commands imports it), each a key of the agent's config schema."""
    from agent import commands
    from agent import config as agent_config

    assert commands.REMOTE_KEYS is REMOTE_CONFIG_KEYS
    for dotted in REMOTE_CONFIG_KEYS:
        section, key = dotted.split(".")
        assert key in agent_config.SCHEMA[section], dotted


def test_parse_assignments__too_many_keys() -> None:
    base: dict[str, desired.Value] = {f"s.k{i}": 1 for i in range(desired.MAX_KEYS)}
    with pytest.raises(DesiredError, match="at most"):
        desired.parse_assignments(["report.interval_s=5"], base)


def test_repo_versions_reports_and_drift(store_url: str) -> None:
    with open_store(store_url) as store, store.transaction() as tx:
        tx.execute("DELETE FROM device_config")
        assert desired_repo.get(tx, "a") is None
        assert desired_repo.set_desired(tx, "a", {"s.k": 1}, 10).desired_version == 1
        row = desired_repo.set_desired(tx, "a", {"s.k": 2}, 11)
        assert (row.desired_version, dict(row.desired)) == (2, {"s.k": 2})
        desired_repo.save_reported(tx, [("a", 1), ("b", 0)], 12)
        desired_repo.save_sent(tx, [("a", 900, 2)], 12)
        rows = desired_repo.of_devices(tx, {"a", "b", "c"})
        assert sorted(rows) == ["a", "b"]
        assert (rows["a"].reported_version, rows["a"].sent_seq) == (1, 900)
        assert desired_repo.drift(tx) == desired.drift(list(rows.values())) == 1
        desired_repo.save_reported(tx, [("a", 2)], 13)
        assert desired_repo.drift(tx) == 0

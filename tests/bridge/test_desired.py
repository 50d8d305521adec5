"""Desired configuration: the pure decisions (cloud_bridge.desired) and their SQL (store)."""

from __future__ import annotations

import pytest

from cloud_bridge import desired
from cloud_bridge.desired import DesiredError, DeviceConfig
from cloud_bridge.store import desired_repo, open_store
from protocol.messages import CONFIG_VERSION_ARG

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
        ["report.interval_s=5", "sensors.day_s=", "x.flag=true", "x.name=abc"], base
    )
    assert out == {"report.interval_s": 5, "x.flag": True, "x.name": "abc"}
    assert base == {"report.interval_s": 30, "sensors.day_s": 60}  # not changed in place


@pytest.mark.parametrize("item", ["interval=5", "report.interval_s", "Report.x=1", ".x=1", "=1"])
def test_parse_assignments__invalid(item: str) -> None:
    with pytest.raises(DesiredError, match=r"section\.key=value"):
        desired.parse_assignments([item], {})


def test_parse_assignments__too_many_keys() -> None:
    items = [f"s.k{i}=1" for i in range(desired.MAX_KEYS + 1)]
    with pytest.raises(DesiredError, match="at most"):
        desired.parse_assignments(items, {})


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

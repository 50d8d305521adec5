"""`cloud-bridge devices enroll` through the real CLI: a record for another fleet is refused."""

from __future__ import annotations

from pathlib import Path

from tests.agent.harness import provision
from tests.bridge.harness import Bridge, bridge_cli


def _enroll(bridge: Bridge, record: Path) -> tuple[int, str]:
    proc = bridge_cli(
        "devices", "enroll", str(record), "--user", "alice",
        "--data", str(bridge.data), "--config", str(bridge.config), check=False,
    )  # fmt: skip
    return proc.returncode, proc.stderr


def _enrolled(bridge: Bridge) -> list[str]:
    return [str(r[0]) for r in bridge.query("SELECT device_id FROM devices")]


def test_a_record_for_another_fleet_is_refused_naming_both(tmp_path: Path) -> None:
    url = "mqtt://127.0.0.1:1883"  # nothing connects: enrolling is offline
    bridge = Bridge.create(tmp_path / "bridge", url, fleet="home")
    dev = provision(tmp_path, "phone-1", "phone", url, bridge.public_key_hex, fleet="office")
    code, err = _enroll(bridge, dev.dir / "enrollment.cbor")
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "'office'" in lines[0] and "'home'" in lines[0] and "phone-1" in lines[0]
    assert "--fleet home" in lines[0]  # and how to fix it
    assert _enrolled(bridge) == []  # nothing written

    # The same record enrolls with a bridge of its own fleet.
    other = Bridge.create(tmp_path / "office-bridge", url, fleet="office")
    assert _enroll(other, dev.dir / "enrollment.cbor") == (0, "")
    assert _enrolled(other) == ["phone-1"]

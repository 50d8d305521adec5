"""The fleet simulator: its plan and configs (pure), and a short real run against a bridge."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent import config as agent_config
from tests.harness.mosquitto import Mosquitto
from tools.fleet import loss
from tools.fleet.bridge import Bridge, BrokerAuth
from tools.fleet.plan import KINDS, DeviceSpec, Tuning, agent_toml, plan, users
from tools.procs import Supervisor

ROOT = Path(__file__).resolve().parents[2]
BRIDGE_KEY = "ab" * 32


def test_plan__households_of_one_device_of_each_kind() -> None:
    specs = plan(10, KINDS, seed=3)
    assert [s.device_id for s in specs[:5]] == [
        "h01-phone",
        "h01-wearable",
        "h01-fridge",
        "h01-ev",
        "h02-phone",
    ]
    assert users(specs) == ["u01", "u02", "u03"]
    assert {s.user for s in specs if s.device_id.startswith("h02")} == {"u02"}
    assert len({s.seed for s in specs}) == 10  # every board its own physics
    assert plan(10, KINDS, seed=3) == specs  # a seed repeats a run


@pytest.mark.parametrize(
    ("devices", "kinds", "message"),
    [(0, KINDS, "at least one"), (3, ("phone", "toaster"), "toaster"), (3, (), "(none)")],
)
def test_plan__invalid(devices: int, kinds: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan(devices, kinds)


@pytest.mark.parametrize("kind", KINDS)
def test_agent_toml__valid_for_the_agent_with_rules_for_its_scene(
    tmp_path: Path, kind: str
) -> None:
    spec = DeviceSpec(f"h01-{kind}", kind, "u01", 42)
    path = tmp_path / "agent.toml"
    path.write_text(agent_toml(spec, "demo", BRIDGE_KEY, "mqtt://127.0.0.1:1883", Tuning()))
    cfg = agent_config.load(path)  # the agent's own validation
    assert (cfg.device_id, cfg.kind, cfg.seed, cfg.day_s) == (spec.device_id, kind, 42, 3.0)
    scene = {
        "fridge": "restock",
        "wearable": "health_streak",
        "ev": "ev_tier",
        "phone": "emergency",
    }
    assert scene[kind] in {r.kind for r in cfg.rules}
    assert any(r.kind == "emergency" for r in cfg.rules)  # every device can raise one


def test_agent_toml__a_clone_is_other_hardware_under_its_own_client_id(tmp_path: Path) -> None:
    spec = DeviceSpec("h01-phone", "phone", "u01", 42)
    path = tmp_path / "agent.toml"
    tuning = Tuning(protocol="3.1.1")
    path.write_text(
        agent_toml(spec, "demo", BRIDGE_KEY, "mqtt://h:1", tuning, seed=7, client_id="c-1")
    )
    cfg = agent_config.load(path)
    assert (cfg.device_id, cfg.seed, cfg.mqtt.client_id, cfg.mqtt.protocol) == (
        "h01-phone",
        7,
        "c-1",
        "3.1.1",
    )


def test_fleet_runs_against_a_running_bridge_and_loses_nothing(
    tmp_path: Path, private_broker: Mosquitto
) -> None:
    auth = BrokerAuth(private_broker.auth_dir, private_broker.pid_file)  # type: ignore[arg-type]
    bridge = Bridge.create(tmp_path / "bridge", "soak", private_broker.url, "5", auth=auth)
    sup = Supervisor()
    try:
        bridge.start(sup)
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "tools.fleet",
                "--url",
                private_broker.url,
                "--bridge-data",
                str(bridge.data),
                "--devices",
                "3",
                "--kinds",
                "phone,fridge",
                "--interval",
                "0.3",
                "--duration",
                "8",
                "--out",
                str(tmp_path / "devices"),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        bridge.wait_quiet(timeout_s=10)
    finally:
        sup.close()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert any("provisioned and enrolled h02-phone (phone, u02)" in line for line in lines)
    rows = {line.split()[0]: line.split() for line in lines if line.startswith("h0")}
    assert sorted(rows) == ["h01-fridge", "h01-phone", "h02-phone"]
    for row in rows.values():
        sent, acked = int(row[3]), int(row[4])
        assert sent >= 10 and acked > 0, row
    # The same zero-loss check the demo runs.
    devices = tmp_path / "devices"
    results = loss.check(
        bridge.event_seqs(), {name: [devices / name / "outbox.sqlite3"] for name in rows}
    )
    assert all(r.ok for r in results), results
    assert bridge.query("SELECT user_id, status FROM pools ORDER BY user_id") == [
        ("u01", "open"),
        ("u02", "open"),
    ]


def test_fleet_without_a_bridge_data_directory_says_how_to_make_one(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tools.fleet", "--bridge-data", str(tmp_path / "none")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "cloud-bridge init --data" in proc.stderr

"""`edge-agent record` captures the scene readers' telemetry and `replay` plays it back;
`edge-agent sources check` prints live values and says whether anything faulted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.cli import main
from agent.sensors.hx711 import CALIBRATION_FILE
from agent.sensors.replay import ReplaySource


def fridge_config(tmp_path: Path, device: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    (data / CALIBRATION_FILE).write_text(json.dumps({"milk": {"tare_mv": 0, "g_per_mv": 1}}))
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f'[device]\nid = "fridge-9"\nfleet = "t"\nkind = "fridge"\ndata_dir = "data"\n'
        f'[bridge]\npublic_key = "{"ab" * 32}"\n'
        f'[sensors]\nsource = "sim"\nseed = 3\nscenes = ["loadcell"]\n'
        f'loadcell_device = "{device}"\n'
        'shelves = [{item = "milk", unit_g = 500, full_count = 4}]\n'
    )
    return cfg


def hx711(device: Path, raw: int) -> None:
    device.mkdir()
    (device / "in_voltage0_raw").write_text(f"{raw}\n")
    (device / "in_voltage0_scale").write_text("0.5\n")  # 1 count = 0.5 mV = 0.5 g here


def test_record_then_replay_carries_the_scene_telemetry(tmp_path: Path) -> None:
    dev = tmp_path / "iio:device0"
    hx711(dev, 2000)  # 1000 g: half of a 4 x 500 g shelf
    out = tmp_path / "session.jsonl"
    cfg = fridge_config(tmp_path, dev)
    assert main(["record", "--config", str(cfg), "--out", str(out), "--count", "2",
                 "--interval-s", "0"]) == 0  # fmt: skip
    replay = ReplaySource(out)
    replay.capture()
    tel = replay.poll(0).telemetry
    assert tel["inv.milk"] == 50 and tel["stock.milk"] == 2 and tel["loadcell.ok"] == 1
    assert "inv.eggs" not in tel  # the simulated appliance stays out when real readers run


def test_sources_check_prints_live_values_and_fails_on_a_fault(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dev = tmp_path / "iio:device0"
    cfg = fridge_config(tmp_path, dev)
    assert main(["sources", "check", "--config", str(cfg), "--seconds", "0"]) == 1
    assert "fault.loadcell.missing=1" in capsys.readouterr().out
    hx711(dev, 1000)
    assert main(["sources", "check", "--config", str(cfg), "--seconds", "0"]) == 0
    out = capsys.readouterr().out
    assert (
        "inv.milk=25" in out and "loadcell.ok=1" in out and "imu: 256 samples at 50 Hz" in out
    )  # the sim board


def test_tare_then_calibrate_stores_the_shelf_on_the_device(tmp_path: Path) -> None:
    dev = tmp_path / "iio:device0"
    cfg = fridge_config(tmp_path, dev)
    (tmp_path / "data" / CALIBRATION_FILE).unlink()
    hx711(dev, 100)  # the empty shelf: 50 mV
    assert main(["sources", "tare", "--config", str(cfg), "--shelf", "milk", "--samples", "2"]) == 0
    (dev / "in_voltage0_raw").write_text("2100\n")  # 2 kg on it: 1050 mV
    args = ["--config", str(cfg), "--shelf", "milk", "--samples", "2", "--grams", "2000"]
    assert main(["sources", "calibrate", *args]) == 0
    doc = json.loads((tmp_path / "data" / CALIBRATION_FILE).read_text())
    assert doc == {"milk": {"tare_mv": 50.0, "g_per_mv": 2.0}}
    assert main(["sources", "tare", "--config", str(cfg), "--shelf", "eggs"]) == 2  # no shelf

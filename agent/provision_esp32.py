"""`edge-agent provision --target esp32`: the files of an ESP32 device running firmware/.

Writes, beside the usual key and enrollment record:

- DIR/board/config.json: the firmware's configuration (firmware/lib/config.py checks it):
  identity, bridge key, broker, Wi-Fi, IMU and the enrolled baseline;
- DIR/board/device.key: the device key (the same 64-hex-digit file as the Linux agent's);
- DIR/board/key.json: the key's generation (1), for key rotation on the device.

The baseline is enrolled from sessions of the device's MPU-6050 measured with the firmware's own
integer fingerprint (firmware/lib/fingerprint.py, which equals agent.features.extract on the same
samples). With `--source sim` the sensor is the simulated MPU-6050 of the unix port
(firmware/lib/mpu6050_sim.py) for `imu.sim_seed`; a real board enrolls from its own captures.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import nacl.signing

import keyfiles
from agent import features, keys
from agent.features import Fingerprint

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE_LIB = ROOT / "firmware" / "lib"
SAMPLE_HZ = 1000
WINDOW = 64
SIM_SEEDS = 1 << 30
"""imu.sim_seed is below this (firmware/lib/config.py)."""


def firmware_module(name: str) -> ModuleType:
    """A module of firmware/lib (written in the subset both Pythons run), loaded in CPython."""
    if str(FIRMWARE_LIB) not in sys.path:
        sys.path.append(str(FIRMWARE_LIB))  # the firmware modules import each other by name
    spec = importlib.util.spec_from_file_location(f"fw_{name}", FIRMWARE_LIB / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sim_fingerprints(
    sim_seed: int, sessions: int, window: int = WINDOW, sample_hz: int = SAMPLE_HZ
) -> list[list[int]]:
    """Fingerprints (wire order) of `sessions` windows of the simulated MPU-6050, timed by the
    simulated board's clock (mpu6050_sim.SimClock), as the unix port captures them."""
    sim = firmware_module("mpu6050_sim")
    mpu = firmware_module("mpu6050")
    fp = firmware_module("fingerprint")
    imu = mpu.MPU6050(sim.SimI2C(sim_seed))
    imu.configure(sample_hz)
    clock = sim.SimClock(sim_seed)
    out = []
    for _ in range(sessions):
        cols, ts, temp_mc = imu.capture(window, sample_hz, clock.ticks_us, clock.sleep_us)
        out.append(
            fp.extract(cols, ts, sample_hz, mpu.ACCEL_LSB_PER_G, mpu.GYRO_LSB_PER_DPS, temp_mc)
        )
    return out


def board_config(
    device_id: str,
    fleet: str,
    bridge_key_hex: str,
    mqtt_url: str,
    baseline: Fingerprint,
    sim_seed: int,
    mqtt_secret: str = "",
) -> dict[str, Any]:
    """config.json for the firmware (its schema: firmware/lib/config.py); with `mqtt_secret`
    the board logs in to the broker as its device id (the secret's hash is in the record)."""
    rest = mqtt_url.split("://", 1)[-1]
    host, _, port = rest.partition(":")
    return {
        "device": {"id": device_id, "fleet": fleet, "kind": "mcu"},
        "bridge": {"public_key": bridge_key_hex},
        "mqtt": {
            "host": host or "127.0.0.1",
            "port": int(port or 1883),
            "username": device_id if mqtt_secret else "",
            "password": mqtt_secret,
        },
        "wifi": {"ssid": "", "password": ""},
        "report": {"interval_s": 60},
        "imu": {"sample_hz": SAMPLE_HZ, "window_samples": WINDOW, "sim_seed": sim_seed},
        "emergency": {"button_pin": 0},
        "baseline": {str(k): v for k, v in baseline.to_wire().items()},
    }


def write_board(
    out: Path,
    key: nacl.signing.SigningKey,
    cfg: dict[str, Any],
) -> dict[str, str]:
    """The board's files under out/board; their paths by name."""
    board = out / "board"
    board.mkdir(parents=True, exist_ok=True)
    key_json = json.dumps({"generation": 1, "public_key": bytes(key.verify_key).hex()})
    (board / "key.json").write_text(key_json)
    # config.json holds the broker password: private, like the key
    config = json.dumps(cfg, indent=1, sort_keys=True) + "\n"
    keyfiles.write_private(board / "config.json", config.encode(), overwrite=True)
    keys.write(board / "device.key", key, overwrite=True)  # the agent's key file, private
    return {name: str(board / name) for name in ("config.json", "key.json", "device.key")}


def baseline_from_sim(sim_seed: int, sessions: int) -> Fingerprint:
    return features.enroll(
        [
            Fingerprint.from_wire(dict(enumerate(fields)))
            for fields in sim_fingerprints(sim_seed, sessions)
        ]
    )

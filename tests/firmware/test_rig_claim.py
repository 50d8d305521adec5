"""Enrollment by claim on the virtual ESP32 (issue 18 item 7): a board with no key and a claim
token in its config.json makes its key on first boot, claims over the token's claim account
(real Mosquitto with ACLs, unmodified bridge), opens the credentials sealed to its key with its
own code (firmware/lib/sealedbox.py), and then runs as any device. A power cut mid-enrollment
(the claim published while the bridge was down, its answer lost) is retried with the same key
and answered again: the device is enrolled exactly once."""

from __future__ import annotations

import json
import time
from pathlib import Path

import nacl.signing
import pytest

from protocol import cose
from tests.agent.harness import cli, wait
from tests.bridge.harness import Bridge, bridge_cli
from tests.firmware.test_rig import DEVICE, RIG_HEAP, events
from tests.harness.mosquitto import Mosquitto
from tools.virtual_esp32 import VirtualEsp32

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def claim_rig(
    tmp: Path, bridge: Bridge, broker: Mosquitto, claim_hex: str, device: str = DEVICE
) -> VirtualEsp32:
    """A provisioned board's config (device id, bridge key, broker, baseline) without its key
    and broker password, with a claim token instead: what a factory line flashes."""
    out = tmp / device
    cli(
        "provision", "--device-id", device, "--fleet", "test", "--kind", "mcu",
        "--target", "esp32", "--out", str(out), "--bridge-key", bridge.public_key_hex,
        "--mqtt-url", broker.url, "--json",
    )  # fmt: skip
    rig = VirtualEsp32(out / "board", tmp / f"rig-{device}", heapsize=RIG_HEAP)
    rig.build()
    for name in ("device.key", "key.json"):
        (rig.flash / name).unlink()
    rig.edit_config("mqtt", "username", "")
    rig.edit_config("mqtt", "password", "")
    rig.edit_config("claim", "token", claim_hex)
    rig.edit_config("report", "interval_s", 1)
    return rig


def kid_of(rig: VirtualEsp32) -> bytes:
    seed = bytes.fromhex((rig.flash / "device.key").read_text().strip())
    return cose.kid_for(nacl.signing.SigningKey(seed).verify_key)


def test_virtual_esp32_enrolls_by_claim_once_through_a_power_cut(
    tmp_path: Path, private_broker: Mosquitto
) -> None:
    bridge = Bridge.create(tmp_path / "bridge", private_broker.url)
    (tmp_path / "users.txt").write_text("u-claim\n")
    batch_file = tmp_path / "batch.json"
    bridge_cli(
        "claims", "issue", "--count", "2", "--user-map", str(tmp_path / "users.txt"),
        "--ttl", "1h", "--out", str(batch_file), "--data", str(bridge.data),
        "--config", str(bridge.config),
    )  # fmt: skip
    tokens = json.loads(batch_file.read_text())["tokens"]
    rig = claim_rig(tmp_path, bridge, private_broker, tokens[0]["claim"])
    bridge.start()  # once, so that the broker keeps the bridge's session while it is down
    bridge.stop()
    thief: VirtualEsp32 | None = None
    try:
        # 1. first boot with the bridge down: the key is made and the claim published, but no
        # answer comes; the power is cut while the board waits for it
        rig.start()
        assert wait(lambda: (rig.flash / "device.key").exists(), 30), rig.console()
        kid = kid_of(rig)
        time.sleep(2)  # the claim is published right after the key is kept
        rig.kill()
        bridge.start()
        # the bridge takes the claim the broker kept for it, enrolls, answers nobody
        assert wait(lambda: bridge.query("SELECT count(*) FROM devices")[0][0] == 1, 30), (
            bridge.log()[-3000:]
        )
        assert "claim: enrolled" not in rig.console()
        # 2. the next boot claims again with the same key and gets the same answer
        rig.start()
        assert wait(lambda: "claim: enrolled as" in rig.console(), 60), rig.console()[-3000:]
        assert kid_of(rig) == kid
        assert wait(lambda: len(events(bridge)) >= 3, 60), rig.console()[-3000:]
        rig.kill()  # 3. a later boot does not claim again: it has its key and credentials
        rig.start()
        n = len(events(bridge))
        assert wait(lambda: len(events(bridge)) >= n + 2, 60), rig.console()[-3000:]
        # 4. another board flashed with the same (spent) token is refused and stays unenrolled
        thief = claim_rig(tmp_path, bridge, private_broker, tokens[0]["claim"], "esp32-rig-2")
        thief.start()
        assert wait(lambda: "claim: refused (claim_used)" in thief.console(), 60), thief.console()[
            -3000:
        ]
    finally:
        if thief is not None and thief.running:
            thief.kill()
        if rig.running:
            rig.stop()
    bridge.stop()
    assert bridge.query("SELECT device_id FROM devices") == [(DEVICE,)]
    console = rig.console()
    assert console.count("claim: enrolled as") == 1
    keys = bridge.query("SELECT kid FROM device_keys WHERE device_id = ?", (DEVICE,))
    assert [bytes(k) for (k,) in keys] == [kid]  # type: ignore[call-overload]
    used = bridge.query("SELECT device_id, used_kid FROM claim_tokens WHERE used_kid IS NOT NULL")
    assert [(d, bytes(k)) for d, k in used] == [(DEVICE, kid)]  # type: ignore[call-overload]
    users = bridge.query("SELECT user_id FROM devices WHERE device_id = ?", (DEVICE,))
    assert users == [("u-claim",)]
    config = json.loads((rig.flash / "config.json").read_text())
    assert config["mqtt"]["username"] and config["mqtt"]["password"]
    seqs = [s for s, _k, _e in events(bridge)]
    assert seqs == list(range(1, len(seqs) + 1))

"""Provisioning by claim (issue 18 item 7): 100 devices from one claim batch by a script (real
broker with ACLs, real bridge process, light enrollment clients), each enrolled exactly once,
retries included; a reused claim is refused; a revoked batch's claim accounts are gone."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import nacl.signing
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from agent.claim import claim_once
from agent.errors import AgentError
from tests.bridge.harness import ROOT, Bridge, bridge_cli
from tests.harness.mosquitto import Mosquitto

pytestmark = [pytest.mark.broker, pytest.mark.slow]
DEVICES = 100


def _connects(broker: Mosquitto, username: str, password: str) -> bool:
    """Whether the broker accepts this login (CONNACK success)."""
    result: list[bool] = []
    done = threading.Event()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=username, protocol=MQTTProtocolVersion.MQTTv5
    )
    client.username_pw_set(username, password)

    def on_connect(_c: object, _u: object, _f: object, reason: object, _p: object) -> None:
        result.append(not getattr(reason, "is_failure", True))
        done.set()

    client.on_connect = on_connect
    client.connect(broker.host, broker.port)
    client.loop_start()
    done.wait(10)
    client.disconnect()
    client.loop_stop()
    return result == [True]


def test_a_batch_provisions_100_devices_once_each(
    tmp_path: Path, private_broker: Mosquitto
) -> None:
    bridge = Bridge.create(tmp_path / "bridge", private_broker.url)
    where = ("--data", str(bridge.data), "--config", str(bridge.config))
    users = [f"u-{i % 7}" for i in range(DEVICES + 1)]  # one token kept back, unused
    (tmp_path / "users.txt").write_text("\n".join(users) + "\n")
    batch_file = tmp_path / "batch.json"
    bridge_cli(
        "claims", "issue", "--count", str(DEVICES + 1), "--user-map", str(tmp_path / "users.txt"),
        "--ttl", "1h", "--out", str(batch_file), *where,
    )  # fmt: skip
    batch = json.loads(batch_file.read_text())
    assert len(batch["tokens"]) == DEVICES + 1
    assert (batch_file.stat().st_mode & 0o777) == 0o600
    bridge.start()
    try:
        line = subprocess.run(
            [
                sys.executable, "-m", "tools.fleet.claim_line", "--batch", str(batch_file),
                "--mqtt-url", private_broker.url, "--bridge-key", bridge.public_key_hex,
                "--limit", str(DEVICES), "--retry", "10", "--workers", "8",
                "--keys-dir", str(tmp_path / "keys"),
            ],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert line.returncode == 0, line.stderr[-3000:] + bridge.log()[-3000:]
        summary = json.loads(line.stdout)
        assert summary["enrolled"] == DEVICES and summary["refused"] == []
        assert summary["retried"] == summary["retries_answered_again"] == 10
        devices = [
            json.loads((tmp_path / "keys" / f"line-{i:05d}.json").read_text())
            for i in range(DEVICES)
        ]
        # A claim reused by another key (and another device id) is refused with its reason.
        first = bytes.fromhex(batch["tokens"][0]["claim"])
        bridge_key = nacl.signing.VerifyKey(bytes.fromhex(bridge.public_key_hex))
        thief = nacl.signing.SigningKey.generate()
        reused = claim_once(
            private_broker.host, private_broker.port, first, thief, "line-thief", "mcu", bridge_key
        )
        assert (reused.result, reused.reason, reused.credentials) == ("refused", "claim_used", None)
        # The same device id with another key is refused too (the token is spent).
        reused2 = claim_once(
            private_broker.host, private_broker.port, first, thief, devices[0]["device"], "mcu",
            bridge_key,
        )  # fmt: skip
        assert reused2.reason == "claim_used"
        # The sealed credentials are a working broker login of the device.
        for dev in devices[:3]:
            assert _connects(private_broker, str(dev["device"]), str(dev["password"]))
        assert not _connects(private_broker, str(devices[0]["device"]), "wrong")
        # Revoking the batch: the unused token's claim account is off the broker.
        spare = bytes.fromhex(batch["tokens"][DEVICES]["claim"])
        out = bridge_cli("claims", "revoke", batch["batch"], *where).stdout
        assert f"{DEVICES + 1} tokens, {DEVICES} used" in out
        with pytest.raises(AgentError, match="refused claim account"):
            claim_once(
                private_broker.host, private_broker.port, spare,
                nacl.signing.SigningKey.generate(), "line-late", "mcu", bridge_key, timeout_s=10,
            )  # fmt: skip
    finally:
        bridge.stop()
    rows = bridge.query("SELECT device_id, user_id FROM devices ORDER BY device_id")
    assert len(rows) == DEVICES  # exactly once each; the thief and the late device never
    expected = {f"line-{i:05d}": users[i] for i in range(DEVICES)}
    assert dict((str(d), str(u)) for d, u in rows) == expected
    keys = bridge.query("SELECT count(*) FROM device_keys")
    assert int(keys[0][0]) == DEVICES  # type: ignore[call-overload]

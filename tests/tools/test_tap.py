"""tools/tap decodes and verifies live traffic of a real bridge and a real agent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bridge.harness import ROOT, Bridge
from tests.harness.mosquitto import Mosquitto

pytestmark = pytest.mark.broker


def test_tap_verifies_and_decodes_every_kind_live(tmp_path: Path, private_broker: Mosquitto):
    bridge = Bridge.create(tmp_path / "bridge", private_broker.url)
    dev = bridge.device(tmp_path, "rig-1", "phone", private_broker.url, "u-1", interval_s=0.2)
    bridge.open_pool("u-1")
    bridge.login("tap")  # an observer account
    bridge.start()
    tap = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tools.tap",
            "--url",
            private_broker.url,
            "--data",
            str(bridge.data),
            "--username",
            "tap",
            "--password-file",
            str(bridge.data / "tap.pass"),
            "--json",
            "--count",
            "40",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    dev.start()
    try:
        out, err = tap.communicate(timeout=60)
    finally:
        dev.stop()
        bridge.stop()
    assert tap.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 40
    assert all(line["verified"] is True for line in lines), [x for x in lines if not x["verified"]]
    kinds = {line["kind"] for line in lines}
    assert {"Birth", "Report", "Ack", "Decision", "BridgeState"} <= kinds, kinds
    signers = {line["signer"] for line in lines}
    assert "bridge" in signers and any(s.startswith("rig-1") for s in signers)
    report = next(line for line in lines if line["kind"] == "Report")
    assert report["fields"]["sender"] == "rig-1" and 0 <= report["fields"]["risk_pm"] <= 1000


def test_tap_without_keys_still_decodes_and_says_unverified(open_broker: Mosquitto) -> None:
    import nacl.signing
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from protocol import envelope
    from protocol import messages as m

    tap = subprocess.Popen(
        [sys.executable, "-m", "tools.tap", "--url", open_broker.url, "--json", "--count", "1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    key = nacl.signing.SigningKey(bytes(32))
    msg = m.BridgeState(sender="b", seq=1, boot=1, ts_ms=1, online=True)
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.connect(open_broker.host, open_broker.port)
    client.loop_start()
    import time

    time.sleep(1.5)  # let tap subscribe
    client.publish("cp/v1/x/bridge/state", envelope.seal(msg, key), 1).wait_for_publish(5)
    out, _ = tap.communicate(timeout=30)
    client.loop_stop()
    (line,) = [json.loads(x) for x in out.splitlines()]
    assert line["verified"] is False and line["error"] == "unknown_device"
    assert line["kind"] == "BridgeState" and line["fields"]["online"] is True

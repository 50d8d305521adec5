"""Live traffic of a real bridge and a real agent over a private broker, held to the written
contract: every captured envelope against the CDDL of docs/protocol.md, every topic against the
channels of docs/asyncapi.yaml, and every line of `tools.tap --json` against the payload schemas.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from protocol import cbor, cose, messages
from tests.bridge.harness import ROOT, Bridge
from tests.harness.mosquitto import Mosquitto
from tools.contract.asyncapi import AsyncApi
from tools.contract.cddl import Cddl
from tools.contract.jsonview import to_json

pytestmark = [pytest.mark.broker, pytest.mark.slow]

TAP_LINES = 40


class Capture:
    """Every message on cp/v1/#, as (topic, envelope bytes), from a plain MQTT subscriber."""

    def __init__(self, broker: Mosquitto) -> None:
        self.items: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.subscribe("cp/v1/#", qos=1)
        self.client.loop_start()
        assert self._subscribed.wait(10), "the capture never subscribed"

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.items.append((msg.topic, bytes(msg.payload)))

    def stop(self) -> list[tuple[str, bytes]]:
        self.client.disconnect()
        self.client.loop_stop()
        with self._lock:
            return list(self.items)


def test_live_traffic_matches_the_cddl_the_asyncapi_and_tap(
    tmp_path: Path, open_broker: Mosquitto
) -> None:
    # An open broker: the capture reads every topic as a contract checker, not as an account
    # the ACLs would confine (tests/broker covers those).
    bridge = Bridge.create(tmp_path / "bridge", open_broker.url)
    dev = bridge.device(tmp_path, "rig-1", "phone", open_broker.url, "u-1", interval_s=0.2)
    bridge.open_pool("u-1")
    capture = Capture(open_broker)
    tap = subprocess.Popen(
        [sys.executable, "-m", "tools.tap", "--url", open_broker.url,
         "--data", str(bridge.data), "--json", "--verified-only", "--count", str(TAP_LINES)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(1.5)  # let tap subscribe before the first message
    bridge.start()
    dev.start()
    try:
        out, err = tap.communicate(timeout=90)
    finally:
        dev.stop()
        bridge.stop()
        captured = capture.stop()
    assert tap.returncode == 0, err

    contract, api = Cddl.from_doc(), AsyncApi.load()
    kinds = set()
    raw_payloads = set()
    for topic, envelope in captured:
        payload = cose.peek_payload(envelope)
        kind = type(messages.decode(payload)).__name__
        kinds.add(kind)
        assert contract.check_envelope(envelope, kind) == [], (topic, kind)
        assert kind in api.channel_kinds(api.channel_for(topic)), (topic, kind)
        raw_payloads.add(json.dumps(to_json(cbor.loads(payload)), sort_keys=True))
    # A plain report run publishes no PoolState (nothing in the pool changes); the vectors and
    # the schema tests cover it (tests/tools/test_contract.py).
    assert {"Birth", "Report", "Ack", "Decision", "BridgeState"} <= kinds, kinds

    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == TAP_LINES
    for line in lines:
        assert line["verified"] is True
        assert api.errors(line["kind"], line["payload"]) == [], line
        # exactly the bytes on the wire, decoded: every integer and byte string kept
        assert json.dumps(line["payload"], sort_keys=True) in raw_payloads, line

"""Real agents, a real bridge process, a private Mosquitto: zero loss and no double effect across
a SIGKILL of the bridge, a broker restart and a SIGKILL of an agent, each mid-stream."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.outbox import Outbox
from protocol import cose, envelope
from protocol import messages as m
from tests.agent.harness import Device, wait
from tests.bridge.harness import Bridge
from tests.harness.mosquitto import Mosquitto

pytestmark = [pytest.mark.broker, pytest.mark.slow]

FRIDGE_RULE = """
[[triggers.rule]]
name = "any-low"
kind = "restock"
item = "milk"
threshold_pct = 100
# 1,000 fen per missing percent: every hold is over the pool's smallest (100 fen), whatever
# level the simulated calendar has reached (a 2,000 fen refill at 96 % full was 80 fen).
full_cost_fen = 100000
priority = 5
cooldown_s = 0.5
"""


class Decisions:
    """A cloud-team consumer: a persistent MQTT 5 session on every decision topic."""

    def __init__(self, broker: Mosquitto, bridge: Bridge) -> None:
        self.seen: set[tuple[str, int]] = set()
        self.lock = threading.Lock()
        self.key = bridge.key.verify_key
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="decisions", protocol=MQTTProtocolVersion.MQTTv5
        )
        self.client.username_pw_set("decisions", bridge.login("decisions"))  # an observer
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe("cp/v1/test/pool/+/decision", qos=1)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect(broker.host, broker.port, clean_start=False, properties=props)
        self.client.loop_start()

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        _s, decision = envelope.unseal(msg.payload, lambda kid: self.key)
        assert isinstance(decision, m.Decision)
        with self.lock:
            self.seen.add((decision.device, decision.device_seq))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_zero_loss_no_double_effect(tmp_path: Path, private_broker: Mosquitto) -> None:
    url = private_broker.url
    # Delivery, not risk, is under test: a step-up acts at once here, so every restock trigger
    # places its hold (with the default, the fridge's first triggers, sent before any report,
    # would wait for phone-1 to confirm: tests/bridge/test_stepup_e2e.py covers that).
    bridge = Bridge.create(tmp_path / "bridge", url, extra='\n[risk]\nstep_up = "allow"\n')
    devices: dict[str, Device] = {
        "fridge-1": bridge.device(
            tmp_path, "fridge-1", "fridge", url, "u-1", extra_toml=FRIDGE_RULE, interval_s=0.1
        ),
        "phone-1": bridge.device(tmp_path, "phone-1", "phone", url, "u-1", interval_s=0.1),
        "ev-1": bridge.device(tmp_path, "ev-1", "ev", url, "u-2", interval_s=0.1),
    }
    bridge.open_pool("u-1", 50_000_000)
    bridge.open_pool("u-2", 50_000_000)
    bridge.start()
    decisions = Decisions(private_broker, bridge)
    for dev in devices.values():
        dev.start("--offline-ok")

    def stored(device: str) -> int:
        return int(bridge.query("SELECT count(*) FROM events WHERE device_id = ?", (device,))[0][0])

    try:
        assert wait(lambda: all(stored(d) > 10 for d in devices), 30), bridge.log()
        bridge.kill()  # SIGKILL mid-stream
        time.sleep(2)
        bridge.start()
        assert wait(lambda: stored("phone-1") > 40, 30), bridge.log()
        private_broker.restart()  # mid-stream
        assert wait(lambda: stored("phone-1") > 80, 40), bridge.log()
        devices["fridge-1"].kill()  # SIGKILL mid-stream
        devices["fridge-1"].start("--offline-ok")
        assert wait(lambda: stored("fridge-1") > 100, 40), devices["fridge-1"].log()[-2000:]
    finally:
        for dev in devices.values():
            if dev.proc:
                dev.stop()
    time.sleep(1)  # the last acks and decisions
    bridge.stop()
    decisions.close()

    for name, dev in devices.items():
        in_bridge = [
            int(r[0])
            for r in bridge.query(
                "SELECT seq FROM events WHERE device_id = ? ORDER BY seq", (name,)
            )
        ]
        assert in_bridge == list(range(1, len(in_bridge) + 1)), name  # contiguous from 1
        box = Outbox.open(dev.dir / "outbox.sqlite3")
        on_device = {e.seq for e in box.sent_after(0, 10**6)}
        next_seq = box.stats().next_seq
        box.close()
        # Every number ever used is in the bridge's log or still waiting on the device.
        assert set(in_bridge) | on_device == set(range(1, next_seq)), name
        with decisions.lock:
            missing = [s for s in in_bridge if (name, s) not in decisions.seen]
        assert missing == [], f"{name}: events without a published decision: {missing[:10]}"

    # No double effect: one hold per restock trigger stored, and the ledger agrees.
    triggers = [
        m.decode(cose.peek_payload(bytes(r[0])))
        for r in bridge.query(
            "SELECT envelope FROM events WHERE device_id = 'fridge-1' AND kind = 4"
        )
    ]
    assert len(triggers) > 5
    holds = dict(
        bridge.query(
            "SELECT idem_key, result FROM pool_commands WHERE user_id = 'u-1' AND kind = 'hold'"
        )
    )
    assert sorted(holds) == sorted(f"fridge-1:{t.seq}:hold" for t in triggers)
    granted = [t for t in triggers if holds[f"fridge-1:{t.seq}:hold"] == "ok"]
    assert granted and set(holds.values()) <= {"ok", "too_many_holds"}  # the policy's cap
    expected = sum(t.body.est_cost_fen for t in granted)  # type: ignore[attr-defined]
    held = bridge.query("SELECT held_fen FROM pools WHERE user_id = 'u-1'")[0][0]
    assert held == expected
    assert bridge.query("SELECT count(*) FROM outputs")[0][0] == 0  # every output published

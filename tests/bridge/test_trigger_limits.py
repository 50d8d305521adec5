"""Trigger limits through a running bridge process and a real broker: a cloned or compromised
device key signs bursts of valid triggers (issue 12). Only what the pool's policy allows acts;
every other trigger is stored and acked like any accepted message, and its decision carries
the refusal's result code, counted in the metrics by that code.

On an open broker (`open_broker`): the test client publishes for several devices at once; a
compromised device publishes on its own topics, which the shipped ACLs allow anyway."""

from __future__ import annotations

import time
import urllib.request
from collections import Counter
from pathlib import Path

import nacl.signing
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from protocol import envelope, topics
from protocol import messages as m
from protocol.topics import Channel
from tests.agent.harness import Device, wait
from tests.bridge.harness import Bridge
from tests.harness.mosquitto import Mosquitto, free_port

pytestmark = pytest.mark.broker
FLEET = "test"


def trigger(sender: str, seq: int, body: m.Body) -> m.Trigger:
    return m.Trigger(
        sender=sender, seq=seq, boot=1, ts_ms=1, model_id="risk-v1", model_sha256=bytes(32),
        risk_pm=10, mono_ms=1, rule="r", priority=1, body=body,
    )  # fmt: skip


def device_key(dev: Device) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(bytes.fromhex((dev.dir / "device.key").read_text()))


def test_bursts_from_one_device_key_act_only_within_the_policy(
    tmp_path: Path, open_broker: Mosquitto
) -> None:
    port = free_port()
    url = open_broker.url
    # The pool's trigger limits are under test, not risk: these triggers come before any report
    # (unscored: a step-up), so step-ups act at once here instead of waiting for a phone.
    bridge = Bridge.create(
        tmp_path / "bridge", url, extra=f'\n[metrics]\nport = {port}\n\n[risk]\nstep_up = "allow"\n'
    )
    devices = {
        "u-sos": bridge.device(tmp_path, "phone-1", "phone", url, "u-sos"),
        "u-fit": bridge.device(tmp_path, "band-1", "wearable", url, "u-fit"),
        "u-ev": bridge.device(tmp_path, "car-1", "ev", url, "u-ev"),
        "u-small": bridge.device(tmp_path, "phone-2", "phone", url, "u-small"),
    }
    for user in ("u-sos", "u-fit", "u-ev"):
        bridge.open_pool(user, 5_000_000)
    bridge.open_pool("u-small", 1_000_000)  # below the 2,000,000 an amount-less illness asks

    decisions: list[m.Decision] = []

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        decision = envelope.unseal(msg.payload, lambda kid: bridge.key.verify_key)[1]
        assert isinstance(decision, m.Decision)
        decisions.append(decision)

    bridge.start()
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.on_message = on_message
    client.connect(open_broker.host, open_broker.port)
    for user in devices:
        client.subscribe(topics.pool(FLEET, user, Channel.POOL_DECISION), qos=1)
    client.loop_start()
    try:
        time.sleep(1.5)  # the bridge subscribed

        def burst(user: str, bodies: list[m.Body]) -> None:
            dev = devices[user]
            topic = topics.device(FLEET, dev.device_id, Channel.TRIGGER)
            for seq, body in enumerate(bodies, 1):
                sealed = envelope.seal(trigger(dev.device_id, seq, body), device_key(dev))
                client.publish(topic, sealed, 1)

        sos = m.EmergencyBody(emergency="illness", source="explicit", amount_fen=10_000)
        burst("u-sos", [sos] * 20)  # 20 emergency draws within a second
        burst("u-fit", [m.HealthStreakBody(streak_days=7, goal_steps=8_000)] * 10)
        burst("u-ev", [m.EvTierBody(km_30d=1_000_000, tier=3)])  # a million km in 30 days
        burst("u-small", [m.EmergencyBody(emergency="illness", source="fall")])
        assert wait(lambda: len(decisions) == 32, 30), (len(decisions), bridge.log())
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    finally:
        client.loop_stop()
        bridge.stop()

    by_user: dict[str, Counter[str]] = {}
    for d in decisions:
        by_user.setdefault(d.user, Counter())[d.result] += 1
    assert by_user == {
        "u-sos": Counter({"ok": 3, "too_many_emergencies": 17}),
        "u-fit": Counter({"ok": 1, "boost_cooldown": 9}),
        "u-ev": Counter({"implausible_mileage": 1}),
        "u-small": Counter({"ok": 1}),
    }
    (small,) = [d for d in decisions if d.user == "u-small"]
    assert (small.action, small.amount_fen) == ("emergency_draw", 1_000_000)
    pools = {
        str(r[0]): r[1:]
        for r in bridge.query("SELECT user_id, limit_fen, outstanding_fen, rate_bps FROM pools")
    }
    assert pools == {
        "u-sos": (5_000_000, 30_000, 1800),
        "u-fit": (5_050_000, 0, 1800),
        "u-ev": (5_000_000, 0, 1800),
        "u-small": (1_000_000, 1_000_000, 1800),
    }
    # Every trigger was accepted and stored: a refusal by the pool loses nothing.
    assert bridge.query("SELECT count(*) FROM events")[0][0] == 32
    counted = {
        line.split('result="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.decode().splitlines()
        if line.startswith("cp_bridge_action_refused_total{")
    }
    assert counted == {
        "too_many_emergencies": 17.0,
        "boost_cooldown": 9.0,
        "implausible_mileage": 1.0,
    }

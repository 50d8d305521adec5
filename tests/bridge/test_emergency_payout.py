"""Issue 16 item 6, emergency service levels: a granted emergency draw becomes a signed payout
instruction on cp/v1/{fleet}/pool/{user}/payout (amount in fen, user, tier, the draw's
idempotency key), measured per tier in cp_bridge_emergency_payout_seconds{tier}; a tier that
misses its budget raises a payout_late alert. A real bridge process, a real secured Mosquitto
(the shipped ACLs must let the bridge publish payouts), triggers signed with a real device key."""

from __future__ import annotations

import threading
import urllib.request
from pathlib import Path

import nacl.signing
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.config import REPO_MODEL
from agent.scoring import Scorer
from cloud_bridge.ingest import PayoutTiming
from cloud_bridge.payouts import LATE_REASON, judge_payout
from protocol import envelope, topics
from protocol import messages as m
from protocol.topics import Channel
from tests.agent.harness import wait
from tests.bridge.harness import Bridge
from tests.harness.mosquitto import Mosquitto, free_port

SCORER = Scorer.load(REPO_MODEL)
MS = 1_000_000  # ns


def timing(tier: str, budget_ms: int) -> PayoutTiming:
    return PayoutTiming("f", "phone-1", 7, tier, received_ns=10 * MS, budget_ms=budget_ms)


def test_a_payout_within_its_budget_is_on_time_and_one_over_it_is_late() -> None:
    on_time = judge_payout(timing("illness", 15_000), 10 * MS + 15_000 * MS)
    assert (on_time.tier, on_time.seconds, on_time.late) == ("illness", 15.0, None)
    late = judge_payout(timing("disaster", 30_000), 10 * MS + 30_001 * MS)
    assert late.late is not None and late.late.reason == LATE_REASON
    assert late.late.device_seq == 7 and "30001 ms, budget 30000 ms" in late.late.detail
    # A clock read before the receipt (never on one monotonic clock) counts as no time.
    assert judge_payout(timing("education", 45_000), 0).seconds == 0.0


def emergency(sender: str, seq: int, kind: str, amount_fen: int) -> m.Trigger:
    body = m.EmergencyBody(emergency=kind, source="explicit", amount_fen=amount_fen)
    return m.Trigger(
        sender=sender, seq=seq, boot=1, ts_ms=1, model_id=SCORER.model_id,
        model_sha256=SCORER.model_sha256, risk_pm=0, mono_ms=1, rule="sos", priority=255,
        body=body,
    )  # fmt: skip


@pytest.mark.broker
def test_emergency_draws_become_measured_signed_payouts(
    tmp_path: Path, private_broker: Mosquitto
) -> None:
    port = free_port()
    policy = tmp_path / "policy.toml"
    policy.write_text("[emergency]\ndisaster_response_ms = 1\n")  # a budget no payout meets
    # Unscored triggers wait for a step-up confirmation by default (tests/bridge/test_stepup*
    # cover that path); here the payout path alone is measured.
    extra = (
        f'\n[policy]\nfile = "{policy}"\n\n[metrics]\nport = {port}\n\n[risk]\nstep_up = "allow"\n'
    )
    bridge = Bridge.create(tmp_path / "bridge", private_broker.url, extra=extra)
    phone = bridge.device(tmp_path, "phone-1", "phone", private_broker.url, "u-1")
    bridge.open_pool("u-1", 5_000_000)
    lock = threading.Lock()
    payouts: list[tuple[str, m.Payout]] = []
    alerts: list[m.Risk] = []
    subscribed = threading.Event()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        out = envelope.unseal(msg.payload, lambda kid: bridge.key.verify_key)[1]
        with lock:
            if isinstance(out, m.Payout):
                payouts.append((msg.topic, out))
            elif isinstance(out, m.Risk) and out.category == "alert":
                alerts.append(out)

    bridge.start()
    team = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="payments")
    team.username_pw_set("payments", bridge.login("payments"))  # an observer account
    team.on_message = on_message
    team.on_subscribe = lambda *_: subscribed.set()
    team.connect(private_broker.host, private_broker.port)
    team.subscribe([("cp/v1/test/pool/+/payout", 1), ("cp/v1/test/risk/+", 1)])
    team.loop_start()
    device = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="phone-1")
    device.username_pw_set(*phone.login)
    device.connect(private_broker.host, private_broker.port)
    device.loop_start()
    key = nacl.signing.SigningKey(bytes.fromhex((phone.dir / "device.key").read_text()))
    trigger_topic = topics.device("test", "phone-1", Channel.TRIGGER)
    try:
        assert subscribed.wait(10)
        for seq, kind, amount in ((1, "illness", 10_000), (2, "disaster", 20_000)):
            sealed = envelope.seal(emergency("phone-1", seq, kind, amount), key)
            device.publish(trigger_topic, sealed, 1).wait_for_publish(10)
        assert wait(lambda: len(payouts) == 2 and len(alerts) == 1, 30), bridge.log()[-3000:]
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    finally:
        device.loop_stop()
        team.loop_stop()
        bridge.stop()

    by_tier = {p.tier: (topic, p) for topic, p in payouts}
    topic, illness = by_tier["illness"]
    assert topic == "cp/v1/test/pool/u-1/payout"
    assert (illness.user, illness.amount_fen, illness.key) == ("u-1", 10_000, "phone-1:1:emergency")
    assert (illness.device, illness.device_seq, illness.budget_ms) == ("phone-1", 1, 15_000)
    _t, disaster = by_tier["disaster"]
    assert (disaster.amount_fen, disaster.key, disaster.budget_ms) == (
        20_000, "phone-1:2:emergency", 1,
    )  # fmt: skip
    versions = {
        int(v) for (v,) in bridge.query("SELECT version FROM pool_events WHERE kind = 'drawn'")
    }  # type: ignore[call-overload]
    assert {illness.version, disaster.version} == versions
    assert illness.received_ms > 0 and disaster.received_ms >= illness.received_ms
    (alert,) = alerts
    assert (alert.device, alert.reason, alert.device_seq) == ("phone-1", LATE_REASON, 2)
    assert "disaster payout took" in alert.detail and "budget 1 ms" in alert.detail
    text = metrics.decode()
    counts = {
        line.split('tier="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("cp_bridge_emergency_payout_seconds_count{")
    }
    assert counts == {"illness": 1.0, "disaster": 1.0}
    late = [
        line
        for line in text.splitlines()
        if line.startswith("cp_bridge_emergency_payout_late_total{")
    ]
    assert late == ['cp_bridge_emergency_payout_late_total{tier="disaster"} 1.0']

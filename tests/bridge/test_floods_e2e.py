"""Floods through a real Mosquitto (open, as an outsider finds it without the shipped ACLs)
against a real bridge process and a real agent process.

- Forged messages from random device ids: the bridge stores and publishes only its budget, counts
  every one, and prunes `rejections` down to its configured size on its own schedule.
- Oversize messages: two of 64 MiB on the agent's command topic and two on a device data topic.
  The broker never sends them (the clients' MQTT 5 Maximum Packet Size); smaller oversize ones
  that do arrive are dropped before decoding and counted. Measured peak RSS growth (VmHWM, reset
  before the flood; 2-core VM): bridge 100 KiB, agent 76 KiB; asserted under 16 MiB. The same
  flood without the packet limit (mqttc.MAX_PACKET_BYTES = 0, as with MQTT 3.1.1), dropped
  only in the clients: bridge 208 MiB, agent 198 MiB at their peaks, inside paho's reader.

On an open broker (`open_broker`): the clients' own limits are the subject here; the shipped
broker configuration refuses payloads over 4,352 bytes before they reach anyone
(tests/broker/test_acl.py)."""

from __future__ import annotations

import json
import os
import random
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import nacl.signing
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud_bridge.broker_config import MAX_QUEUED
from cloud_bridge.ingest import OVERSIZE_KEPT
from protocol import envelope, topics
from protocol import messages as m
from protocol.cose import MAX_ENVELOPE_BYTES
from protocol.errors import Reason
from protocol.topics import Channel
from tests.agent.harness import Device, wait
from tests.bridge.harness import Bridge
from tests.harness.mosquitto import Mosquitto, free_port

pytestmark = [pytest.mark.broker, pytest.mark.slow]
SHA = bytes(32)
BUDGET = 10  # per source and minute, in the bridge's config below
MAX_ROWS = 25


def report(sender: str, seq: int) -> m.Report:
    return m.Report(
        sender=sender, seq=seq, boot=1, ts_ms=1, model_id="risk-v1", model_sha256=SHA,
        risk_pm=10, features=b"\x00", mono_ms=1,
    )  # fmt: skip


def metrics(port: int) -> dict[tuple[str, str], float]:
    """{(metric, labels): value} of the bridge's Prometheus endpoint."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            metric, _, labels = name.partition("{")
            out[(metric, labels.rstrip("}"))] = float(value)
    return out


def by_reason(values: dict[tuple[str, str], float], metric: str) -> Counter[str]:
    return Counter(
        {
            labels.split('"')[1]: int(v)
            for (name, labels), v in values.items()
            if name == metric and labels.startswith("reason=")
        }
    )


def publisher(broker: Mosquitto) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.max_inflight_messages_set(1000)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def test_forged_flood_through_the_broker(
    tmp_path: Path, broker_factory: Callable[..., Mosquitto]
) -> None:
    # Open, and with the shipped configuration's queue (max_queued_messages 100000): at
    # Mosquitto's default of 1000, a bridge slowed by a busy machine fell 1000 messages behind
    # the 2000-message flood and the broker dropped the rest before the bridge could count them.
    open_broker = broker_factory(secure=False, max_queued_messages=MAX_QUEUED)
    port = free_port()
    bridge = Bridge.create(
        tmp_path / "bridge",
        open_broker.url,
        extra=(
            f"\n[metrics]\nport = {port}\n\n[rejections]\nper_key_per_minute = {BUDGET}\n"
            f"per_reason_per_minute = {BUDGET}\nmax_rows = {MAX_ROWS}\n\n"
            "[retention]\nbatch_rows = 10\ninterval_s = 1\n"
        ),
    )
    real = bridge.device(tmp_path, "dev-real", "phone", open_broker.url, "user-a")
    key = nacl.signing.SigningKey(bytes.fromhex((real.dir / "device.key").read_text()))
    stranger = nacl.signing.SigningKey(bytes(range(32)))
    rng = random.Random(3)
    flood: list[tuple[str, bytes, Reason]] = []
    for i in range(2000):
        dev = f"d{rng.getrandbits(40):010x}"
        topic = topics.device("test", dev, Channel.REPORT)
        if i % 4 == 0:
            flood.append(
                (topic, envelope.seal(report(dev, i + 1), stranger), Reason.UNKNOWN_DEVICE)
            )
        elif i % 4 == 1:
            flood.append((topic, envelope.seal(report(dev, i + 1), key), Reason.SENDER_MISMATCH))
        elif i % 4 == 2:
            flood.append((topic, b"\xff" + os.urandom(40), Reason.BAD_CBOR))
        else:
            flood.append((topic, m.encode(report(dev, i + 1)), Reason.NOT_COSE))
    notes: list[str] = []
    lock = threading.Lock()

    def on_note(_c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        with lock:
            notes.append(msg.topic)

    watcher = mqtt.Client(CallbackAPIVersion.VERSION2)
    watcher.on_message = on_note
    watcher.connect(open_broker.host, open_broker.port)
    watcher.subscribe("cp/v1/test/risk/#", qos=1)
    watcher.loop_start()
    client = publisher(open_broker)
    bridge.start()
    try:
        assert wait(lambda: bridge.query("SELECT count(*) FROM bridge_counters")[0][0] > 0, 20)
        time.sleep(1.5)  # subscribed
        for topic, payload, _ in flood:
            client.publish(topic, payload, qos=1)

        def counted() -> int:
            return sum(by_reason(metrics(port), "cp_bridge_rejected_total").values())

        assert wait(lambda: counted() == len(flood), 60), (counted(), bridge.log()[-2000:])
        values = metrics(port)
        rejected = by_reason(values, "cp_bridge_rejected_total")
        unstored = by_reason(values, "cp_bridge_rejected_unstored_total")
        assert rejected == Counter(r.value for _, _, r in flood)
        stored = rejected - unstored
        # Four sources (the enrolled key; three reasons with no key verified), BUDGET each a
        # minute, of 500 messages each; the flood takes seconds, but a minute boundary of the
        # budget may fall inside it.
        assert set(stored) == set(rejected)
        assert all(BUDGET <= n <= 2 * BUDGET for n in stored.values()), stored
        # One signed risk note per stored refusal, none for the rest.
        assert wait(lambda: len(notes) == sum(stored.values()), 20), (len(notes), stored)
        # Retention brings the table down to its size on the bridge's own schedule.
        assert wait(lambda: bridge.query("SELECT count(*) FROM rejections")[0][0] <= MAX_ROWS, 20)
        pruned = metrics(port)[("cp_bridge_pruned_rows_total", 'table="rejections"')]
        remaining = bridge.query("SELECT count(*) FROM rejections")[0][0]
        assert pruned + remaining == sum(stored.values())
        assert bridge.proc is not None and bridge.proc.poll() is None
    finally:
        client.loop_stop()
        watcher.loop_stop()
        bridge.stop()
    assert bridge.query("SELECT count(*) FROM events")[0][0] == 0


def rss_kb(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def reset_peak(pid: int) -> None:
    """Reset the process's peak RSS (VmHWM) to its current RSS (Linux 4.0+)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def dropped_inbound(device: Device) -> int:
    """The agent's count of dropped inbound messages, from its status file (rewritten every
    second); -1 before the first."""
    path = device.dir / "status.json"
    return int(json.loads(path.read_text())["dropped_inbound"]) if path.exists() else -1


def test_oversize_floods_do_not_reach_memory(tmp_path: Path, open_broker: Mosquitto) -> None:
    port = free_port()
    url = open_broker.url
    bridge = Bridge.create(tmp_path / "bridge", url, extra=f"\n[metrics]\nport = {port}\n")
    dev = bridge.device(tmp_path, "phone-1", "phone", url, "user-a", interval_s=0.2)
    bridge.open_pool("user-a")
    bridge.start()
    dev.start()
    client = publisher(open_broker)
    huge = bytes(64 * 1024 * 1024)
    cmd = topics.command("test", "phone-1", "config")
    data = topics.device("test", "phone-1", Channel.REPORT)

    def events() -> int:
        return int(bridge.query("SELECT count(*) FROM events")[0][0])

    try:
        assert wait(lambda: events() >= 3, 60), bridge.log()[-2000:] + dev.log()[-2000:]
        assert dev.proc is not None and bridge.proc is not None
        pids = {"bridge": bridge.proc.pid, "agent": dev.proc.pid}
        assert wait(lambda: dropped_inbound(dev) >= 0, 10)
        dropped = dropped_inbound(dev)
        for pid in pids.values():
            reset_peak(pid)
        before = {name: rss_kb(pid)["VmRSS"] for name, pid in pids.items()}
        for topic in (cmd, cmd, data, data):
            client.publish(topic, huge, qos=1).wait_for_publish(120)
        # Then smaller oversize ones, under the packet limit: they reach the clients, after the
        # huge ones (one publisher, one topic, QoS 1: in order). Only these are counted, so the
        # huge ones were dropped by the broker, not delivered nor still on their way.
        mid = bytes(MAX_ENVELOPE_BYTES + 1)
        for topic in (cmd, cmd, data, data):
            client.publish(topic, mid, qos=1).wait_for_publish(10)

        def oversize() -> int:
            return by_reason(metrics(port), "cp_bridge_rejected_total")["oversize"]

        assert wait(lambda: oversize() == 2, 30), bridge.log()[-2000:]
        assert wait(lambda: dropped_inbound(dev) == dropped + 2, 30), dropped_inbound(dev)
        growth = {name: rss_kb(pid)["VmHWM"] - before[name] for name, pid in pids.items()}
        print(f"peak RSS growth, KiB: {growth}")
        assert all(kib < 16 * 1024 for kib in growth.values()), growth
        # Both keep working.
        after = events()
        assert wait(lambda: events() > after + 2, 30)
        assert bridge.proc.poll() is None and dev.proc.poll() is None
    finally:
        client.loop_stop()
        dev.stop()
        bridge.stop()
    rows = bridge.query("SELECT reason, detail, length(envelope) FROM rejections")
    assert (
        rows == [("oversize", f"{len(mid)} bytes, limit {MAX_ENVELOPE_BYTES}", OVERSIZE_KEPT)] * 2
    )
    assert dev.log().count("oversize message") == 1  # the second within the minute: counted only
    assert "Dropping too large outgoing PUBLISH" in open_broker.log_path.read_text()

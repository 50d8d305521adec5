"""Commands from the cloud through the real bridge: key rotation and a model update."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import nacl.signing
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent import keys
from protocol import cose, envelope, topics
from protocol import messages as m
from protocol.topics import Channel
from tests.agent.harness import wait
from tests.bridge.harness import Bridge, bridge_cli
from tests.harness.mosquitto import Mosquitto

pytestmark = pytest.mark.broker
ROOT = Path(__file__).resolve().parents[2]


def kids_of(bridge: Bridge, device: str) -> dict[str, str]:
    rows = bridge.query("SELECT kid, status FROM device_keys WHERE device_id = ?", (device,))
    return {bytes(k).hex(): str(s) for k, s in rows}


def test_key_rotation_end_to_end(tmp_path: Path, private_broker: Mosquitto) -> None:
    bridge = Bridge.create(tmp_path / "bridge", private_broker.url)
    dev = bridge.device(tmp_path, "rig-1", "phone", private_broker.url, "u-1", interval_s=0.2)
    old_key = keys.load(dev.dir / "device.key")
    old_kid = cose.kid_for(old_key.verify_key).hex()
    bridge.start()
    dev.start()
    try:
        assert wait(lambda: len(bridge.query("SELECT seq FROM events")) > 5, 20), bridge.log()
        bridge_cli(
            "devices", "rotate", "rig-1", "--data", str(bridge.data), "--config", str(bridge.config)
        )

        def rotated() -> bool:
            ks = kids_of(bridge, "rig-1")
            return len(ks) == 2 and ks.get(old_kid) == "retired"

        assert wait(rotated, 30), (kids_of(bridge, "rig-1"), dev.log()[-2000:])
        # Someone still holding the old key (a clone, a thief) is told apart from a revocation.
        # The holder has the device's broker password too (a copied device directory); the
        # device is off meanwhile, or the broker would hand the session (client id = username)
        # back and forth between the two.
        assert dev.stop() == 0
        _publish(private_broker, topics.device("test", "rig-1", Channel.REPORT),
                 envelope.seal(_report("rig-1", 1_000_000), old_key), dev.login)  # fmt: skip
        assert wait(lambda: bridge.query("SELECT reason FROM rejections"), 10), bridge.log()
        assert bridge.query("SELECT reason FROM rejections") == [("retired_key",)]
        dev.start()
        before = len(bridge.query("SELECT seq FROM events"))
        assert wait(lambda: len(bridge.query("SELECT seq FROM events")) > before + 5, 20)
        # A rotated device restarts on its new key and enrollment record.
        assert dev.stop() == 0
        dev.start()
        before = len(bridge.query("SELECT seq FROM events"))
        assert wait(lambda: len(bridge.query("SELECT seq FROM events")) > before + 5, 20), (
            dev.log()[-2000:]
        )
    finally:
        if dev.proc:
            dev.stop()
        bridge.stop()
    new_key = keys.load(dev.dir / "device.key")
    new_kid = cose.kid_for(new_key.verify_key).hex()
    assert new_kid != old_kid and kids_of(bridge, "rig-1")[new_kid] == "active"
    assert not keys.pending_path(dev.dir / "device.key").exists()
    # The newest events are signed by the new key; the numbers run on without a gap.
    seqs = [int(r[0]) for r in bridge.query("SELECT seq FROM events ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1))
    (last,) = bridge.query("SELECT envelope FROM events ORDER BY seq DESC LIMIT 1")[0]
    signed = cose.verify1(bytes(last), lambda kid: new_key.verify_key)
    assert signed.kid.hex() == new_kid
    assert bridge.query("SELECT key_generation FROM devices")[0][0] == 2


def _report(device: str, seq: int) -> m.Report:
    return m.Report(
        sender=device, seq=seq, boot=1, ts_ms=time.time_ns() // 10**6, model_id="risk-v1",
        model_sha256=bytes(32), risk_pm=10, features=b"", mono_ms=1,
    )  # fmt: skip


def _publish(broker: Mosquitto, topic: str, payload: bytes, login: tuple[str, str]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.username_pw_set(*login)
    client.connect(broker.host, broker.port)
    client.loop_start()
    client.publish(topic, payload, 1).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()


def _command(
    bridge: Bridge, broker: Mosquitto, device: str, name: str, args: dict[str, object], seq: int
) -> None:
    key = bridge.key
    cmd = m.Command(
        sender="operator",
        seq=seq,
        boot=1,
        ts_ms=time.time_ns() // 10**6,
        device=device,
        command=name,
        args=args,
    )  # type: ignore[arg-type]
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.username_pw_set("operator", bridge.login("operator", "bridge"))  # a bridge account
    client.connect(broker.host, broker.port)
    client.loop_start()
    client.publish(
        topics.command("test", device, name), envelope.seal(cmd, key), 1
    ).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()


def _answers(bridge: Bridge, cmd_seq: int) -> list[str]:
    out = []
    for (env,) in bridge.query("SELECT envelope FROM events WHERE kind = 3"):
        msg = m.decode(cose.peek_payload(bytes(env)))
        if isinstance(msg, m.Report) and msg.cmd_seq == cmd_seq:
            out.append(msg.cmd_result)
    return out


def test_model_update_swaps_on_success_and_keeps_the_old_one_on_failure(
    tmp_path: Path, private_broker: Mosquitto
) -> None:
    bridge = Bridge.create(tmp_path / "bridge", private_broker.url)
    dev = bridge.device(tmp_path, "rig-1", "phone", private_broker.url, "u-1", interval_s=0.3)
    model = (ROOT / "models" / "risk-v1.tflite").read_bytes()
    meta = (ROOT / "models" / "risk-v1.json").read_bytes()
    served = tmp_path / "served"
    served.mkdir()
    (served / "m.tflite").write_bytes(model)
    (served / "m.json").write_bytes(meta)
    (served / "bad.tflite").write_bytes(model[:200])  # truncated: must not load
    good = {
        "model_id": "risk-v1",
        "sha256": hashlib.sha256(model).digest(),
        "url": (served / "m.tflite").as_uri(),
        "meta_url": (served / "m.json").as_uri(),
        "meta_sha256": hashlib.sha256(meta).digest(),
    }
    bad = {
        **good,
        "url": (served / "bad.tflite").as_uri(),
        "sha256": hashlib.sha256(model[:200]).digest(),
    }
    wrong_hash = {**good, "sha256": bytes(32)}
    bridge.start()
    dev.start()
    try:
        assert wait(lambda: len(bridge.query("SELECT seq FROM events")) > 3, 20), bridge.log()
        _command(bridge, private_broker, "rig-1", "model", bad, 1)
        assert wait(lambda: _answers(bridge, 1), 30), dev.log()[-2000:]
        _command(bridge, private_broker, "rig-1", "model", wrong_hash, 2)
        assert wait(lambda: _answers(bridge, 2), 30)
        _command(bridge, private_broker, "rig-1", "model", good, 3)
        assert wait(lambda: _answers(bridge, 3), 30)
        _command(bridge, private_broker, "rig-1", "model", good, 3)  # a replay: ignored
        time.sleep(1)
    finally:
        dev.stop()
        bridge.stop()
    assert _answers(bridge, 1)[0].startswith("model_rejected")
    assert _answers(bridge, 2) == ["model_rejected: sha256 mismatch"]
    assert _answers(bridge, 3) == ["ok"]  # once: the replayed command was refused
    assert (dev.dir / "models" / "current.json").exists()
    assert not list((dev.dir / "models").glob("*bad*"))
    # After the swap the device still scores and reports with the model's identity.
    assert "model_rejected" not in dev.status().get("last_error", "")
    assert dev.status()["model_id"] == "risk-v1"


def test_rotation_record_signed_by_another_key_is_refused(
    tmp_path: Path, private_broker: Mosquitto
) -> None:
    bridge = Bridge.create(tmp_path / "bridge", private_broker.url)
    dev = bridge.device(tmp_path, "rig-1", "phone", private_broker.url, "u-1")
    thief = nacl.signing.SigningKey.generate()
    record = m.Enrollment(
        sender="rig-1",
        seq=2,
        boot=1,
        ts_ms=1,
        fleet="test",
        device_kind="phone",
        public_key=bytes(thief.verify_key),
        prev_kid=cose.kid_for(thief.verify_key),
    )
    bridge.start()
    try:
        time.sleep(1.5)
        client = mqtt.Client(CallbackAPIVersion.VERSION2)
        client.username_pw_set(*dev.login)  # the thief has the device's broker password too
        client.connect(private_broker.host, private_broker.port)
        client.loop_start()
        client.publish("cp/v1/test/rig-1/enroll", envelope.seal(record, thief), 1).wait_for_publish(
            5
        )
        client.loop_stop()
        assert wait(lambda: bridge.query("SELECT reason FROM rejections"), 10)
    finally:
        bridge.stop()
    assert bridge.query("SELECT reason FROM rejections")[0][0] == "unknown_device"
    assert len(kids_of(bridge, "rig-1")) == 1
    assert dev.device_id == "rig-1"


def test_publisher_never_reuses_numbers_after_a_rollback(tmp_path: Path) -> None:
    from cloud_bridge.publish import Publisher
    from cloud_bridge.store import open_store

    with open_store(str(tmp_path / "b.sqlite3")) as store:
        pub = Publisher("bridge-x", nacl.signing.SigningKey(bytes(32)), store)
        handed = [pub.next_seq() for _ in range(3)]
        pub.invalidate()  # fresh block below, reserved in a transaction that will fail
        try:
            with store.transaction() as tx:
                handed.append(pub.next_seq(tx))  # this number is never published
                raise RuntimeError("the batch failed")
        except RuntimeError:
            pub.invalidate()  # what Ingest.process does on a rollback
        later = [pub.next_seq() for _ in range(3)]
        # The same instance after a restart reserves from the database: never the same numbers.
        again = Publisher("bridge-x", nacl.signing.SigningKey(bytes(32)), store)
        after_restart = [again.next_seq() for _ in range(3)]
        assert min(later) > max(handed[:3])
        assert not set(later) & set(after_restart)

"""A corpus of bad messages, one per reason code, against a running bridge process: each is
refused with its code, the bridge keeps serving, and the ledger does not move.

On an open broker (`open_broker`): these defences must hold when anyone can publish anything;
the shipped ACLs, which keep most of these messages off the bridge's topics, are tested in
tests/broker/test_acl.py."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import cbor2
import nacl.signing
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from protocol import cose, envelope, topics
from protocol import messages as m
from protocol.errors import Reason
from protocol.topics import Channel
from tests.agent.harness import wait
from tests.bridge.harness import Bridge, bridge_cli
from tests.harness.mosquitto import Mosquitto, free_port

pytestmark = pytest.mark.broker
SHA = bytes(32)


def report(sender: str, seq: int, **over: object) -> m.Report:
    fields: dict[str, object] = dict(
        sender=sender,
        seq=seq,
        boot=1,
        ts_ms=1,
        model_id="risk-v1",
        model_sha256=SHA,
        risk_pm=10,
        features=b"\x00",
        mono_ms=1,
    )
    fields.update(over)
    return m.Report(**fields)  # type: ignore[arg-type]


def signed_map(data: object, key: nacl.signing.SigningKey) -> bytes:
    return cose.sign1(cbor2.dumps(data, canonical=True), key, cose.kid_for(key.verify_key))


def handmade(protected: dict[int, object], key: nacl.signing.SigningKey, payload: bytes) -> bytes:
    prot = cbor2.dumps(protected)
    sig = key.sign(cbor2.dumps(["Signature1", prot, b"", payload])).signature
    return cbor2.dumps(cbor2.CBORTag(18, [prot, {}, payload, sig]))


def test_every_reason_code_is_refused_and_nothing_moves(
    tmp_path: Path, open_broker: Mosquitto
) -> None:
    port = free_port()
    bridge = Bridge.create(
        tmp_path / "bridge", open_broker.url, extra=f"\n[metrics]\nport = {port}\n"
    )
    a = bridge.device(tmp_path, "dev-a", "fridge", open_broker.url, "user-a")
    bridge.device(tmp_path, "dev-b", "phone", open_broker.url, "user-b")
    c = bridge.device(tmp_path, "dev-c", "phone", open_broker.url, "user-c")
    bridge.open_pool("user-a")
    bridge_cli(
        "devices", "revoke", "dev-c", "--data", str(bridge.data), "--config", str(bridge.config)
    )
    key_a = nacl.signing.SigningKey(bytes.fromhex((a.dir / "device.key").read_text()))
    key_c = nacl.signing.SigningKey(bytes.fromhex((c.dir / "device.key").read_text()))
    stranger = nacl.signing.SigningKey(bytes(range(32)))
    rep = topics.device("test", "dev-a", Channel.REPORT)
    good = m.encode(report("dev-a", 1))
    valid = envelope.seal(report("dev-a", 1), key_a)
    flipped = valid[:-1] + bytes([valid[-1] ^ 1])
    raw = cbor2.loads(good)

    def mutate(**kv: object) -> bytes:
        return signed_map({**raw, **{int(k[1:]): v for k, v in kv.items()}}, key_a)

    corpus: list[tuple[str, bytes, Reason]] = [
        (rep, b"x" * 5000, Reason.OVERSIZE),
        (rep, b"\xff\x00\x01", Reason.BAD_CBOR),
        (rep, cbor2.dumps([1, 2, 3]), Reason.NOT_COSE),
        (rep, handmade({1: -8}, key_a, good), Reason.BAD_HEADER),
        (
            rep,
            handmade({1: -7, 4: cose.kid_for(key_a.verify_key)}, key_a, good),
            Reason.UNSUPPORTED_ALG,
        ),
        (rep, flipped, Reason.BAD_SIGNATURE),
        (rep, envelope.seal(report("dev-a", 1), stranger), Reason.UNKNOWN_DEVICE),
        (
            topics.device("test", "dev-c", Channel.REPORT),
            envelope.seal(report("dev-c", 1), key_c),
            Reason.REVOKED_KEY,
        ),
        (
            topics.device("test", "dev-b", Channel.REPORT),
            envelope.seal(report("dev-b", 1), key_a),
            Reason.SENDER_MISMATCH,
        ),
        (rep, signed_map([1, 2], key_a), Reason.NOT_A_MAP),
        (rep, signed_map({k: v for k, v in raw.items() if k != 12}, key_a), Reason.MISSING_FIELD),
        (rep, mutate(k12=5000), Reason.BAD_FIELD),
        (rep, mutate(k1=99), Reason.UNKNOWN_KIND),
        (rep, mutate(k0=2), Reason.UNSUPPORTED_VERSION),
        ("cp/v1/test/pool/report", valid, Reason.BAD_TOPIC),
        ("cp/v1/test/dev@a/report", valid, Reason.BAD_ID),
        (topics.device("test", "dev-a", Channel.TRIGGER), valid, Reason.TOPIC_MISMATCH),
    ]
    bridge.start()
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.connect(open_broker.host, open_broker.port)
    client.loop_start()
    try:
        time.sleep(1.5)
        before = bridge.query("SELECT count(*) FROM pool_postings")[0][0]
        versions = bridge.query("SELECT user_id, version FROM pools ORDER BY user_id")
        # A valid message first (so a duplicate and a stale one can follow), then the corpus.
        client.publish(rep, valid, 1).wait_for_publish(5)
        for seq in range(2, 100):
            client.publish(rep, envelope.seal(report("dev-a", seq), key_a), 1)
        assert wait(lambda: bridge.query("SELECT count(*) FROM events")[0][0] == 99, 20), (
            bridge.log()
        )
        for topic, payload, _ in corpus:
            client.publish(topic, payload, 1).wait_for_publish(5)
        last = envelope.seal(report("dev-a", 99), key_a)  # Ed25519 is deterministic: same bytes
        client.publish(rep, last, 1).wait_for_publish(5)  # a duplicate inside the window
        client.publish(rep, envelope.seal(report("dev-a", 200), key_a), 1)
        client.publish(rep, envelope.seal(report("dev-a", 30), key_a), 1)  # 30 < 200 - 64: stale
        expected = {reason.value for _, _, reason in corpus} | {"stale"}
        assert wait(
            lambda: expected <= {r[0] for r in bridge.query("SELECT reason FROM rejections")}, 20
        ), bridge.query("SELECT reason FROM rejections")
        # One row per refused message, each with the reason it was built to provoke (the batch
        # may reorder them: topic checks come before signatures, signatures before windows).
        rows = sorted(str(r[0]) for r in bridge.query("SELECT reason FROM rejections"))
        assert rows == sorted([reason.value for _, _, reason in corpus] + ["stale"])
        # Counted by reason in the metrics, duplicates too (they are not worth a table row).
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        counted = {
            line.split('reason="')[1].split('"')[0]
            for line in text.decode().splitlines()
            if line.startswith("cp_bridge_rejected_total{")
        }
        assert counted == {reason.value for _, _, reason in corpus} | {"stale", "replay"}
        # Still serving: the next valid message is stored and acked.
        client.publish(rep, envelope.seal(report("dev-a", 201), key_a), 1).wait_for_publish(5)
        assert wait(
            lambda: bridge.query("SELECT count(*) FROM events WHERE seq = 201")[0][0] == 1, 10
        )
        assert bridge.proc is not None and bridge.proc.poll() is None
    finally:
        client.loop_stop()
        bridge.stop()
    # Not one refused message touched the ledger, the pools or the event log.
    seqs = [r[0] for r in bridge.query("SELECT seq FROM events ORDER BY seq")]
    assert seqs == [*range(1, 100), 200, 201]
    assert bridge.query("SELECT count(*) FROM pool_postings")[0][0] == before
    assert bridge.query("SELECT user_id, version FROM pools ORDER BY user_id") == versions


def test_a_reused_sequence_number_with_other_content_freezes_the_pool(
    tmp_path: Path, open_broker: Mosquitto
) -> None:
    bridge = Bridge.create(tmp_path / "bridge", open_broker.url)
    a = bridge.device(tmp_path, "dev-a", "phone", open_broker.url, "user-a")
    bridge.open_pool("user-a")
    key_a = nacl.signing.SigningKey(bytes.fromhex((a.dir / "device.key").read_text()))
    rep = topics.device("test", "dev-a", Channel.REPORT)
    bridge.start()
    alerts: list[m.Message] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.on_message = lambda c, u, msg: alerts.append(
        envelope.unseal(msg.payload, lambda kid: bridge.key.verify_key)[1]
    )
    client.connect(open_broker.host, open_broker.port)
    client.subscribe(topics.risk("test", "dev-a"), qos=1)
    client.loop_start()
    try:
        time.sleep(1.5)
        for seq in range(1, 6):
            client.publish(rep, envelope.seal(report("dev-a", seq), key_a), 1)
        assert wait(lambda: bridge.query("SELECT count(*) FROM events")[0][0] == 5, 10)
        # A second board with a copy of the key starts its own numbering: seq 3 again.
        client.publish(rep, envelope.seal(report("dev-a", 3, risk_pm=11), key_a), 1)
        assert wait(
            lambda: (
                bridge.query("SELECT status FROM pools WHERE user_id = 'user-a'")[0][0] == "frozen"
            ),
            10,
        )
        assert wait(lambda: any(getattr(a, "reason", "") == "seq_conflict" for a in alerts), 5)
    finally:
        client.loop_stop()
        bridge.stop()
    stored = bridge.query("SELECT envelope FROM events WHERE seq = 3")[0][0]
    assert m.decode(cose.peek_payload(bytes(stored))).risk_pm == 10  # type: ignore[attr-defined]
    assert bridge.query("SELECT count(*) FROM events")[0][0] == 5

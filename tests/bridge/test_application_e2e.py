"""Issue 16 item 1 as a message: the user's enrolled phone applies (`edge-agent apply`), the
bridge scores it as `cloud-bridge pool apply` does, opens the pool with the scorecard's limit and
publishes the signed decision; a replayed application does nothing; a fridge may not apply.

A real agent process, a real bridge process on SQLite and on PostgreSQL, a private Mosquitto
with the shipped ACLs (the phone's account must be allowed to publish on its application topic)."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path

import nacl.signing
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from protocol import cose, envelope, topics
from protocol import messages as m
from protocol.topics import Channel
from tests.agent.harness import ROOT, cli, run_cli, wait
from tests.bridge.harness import Bridge
from tests.harness.mosquitto import Mosquitto, free_port

pytestmark = [pytest.mark.broker]

GOOD = ROOT / "docs" / "examples" / "applicant.json"


class Team:
    """The cloud team: every decision, pool state and risk note, signature checked."""

    def __init__(self, broker: Mosquitto, bridge: Bridge) -> None:
        self.lock = threading.Lock()
        self.decisions: list[tuple[str, m.Decision]] = []
        self.states: dict[str, m.PoolState] = {}
        self.risk: list[m.Risk] = []
        subscribed = threading.Event()
        key = bridge.key.verify_key
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="team")
        self.client.username_pw_set("team", bridge.login("team"))  # an observer account

        def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
            out = envelope.unseal(msg.payload, lambda kid: key)[1]  # a bad signature raises
            with self.lock:
                if isinstance(out, m.Decision):
                    self.decisions.append((msg.topic, out))
                elif isinstance(out, m.PoolState):
                    self.states[out.user] = out
                elif isinstance(out, m.Risk):
                    self.risk.append(out)

        self.client.on_message = on_message
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(
            [("cp/v1/test/pool/+/decision", 1), ("cp/v1/test/pool/+/state", 1),
             ("cp/v1/test/risk/+", 1)]
        )  # fmt: skip
        self.client.loop_start()
        assert subscribed.wait(10)

    def applications(self) -> list[tuple[str, m.Decision]]:
        with self.lock:
            return [(t, d) for t, d in self.decisions if d.action == "apply"]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def publish(broker: Mosquitto, login: tuple[str, str], topic: str, payload: bytes) -> None:
    """Publish as a device's broker account (another client id: the agent keeps its own)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{login[0]}-raw")
    client.username_pw_set(*login)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        client.publish(topic, payload, 1).wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


def replays(port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    prefix = 'cp_bridge_rejected_total{reason="replay"} '
    return sum(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))


def test_a_phone_applies_and_its_pool_opens_once_and_a_fridge_may_not(
    tmp_path: Path, private_broker: Mosquitto, store_url: str
) -> None:
    url = private_broker.url
    port = free_port()
    bridge = Bridge.create(
        tmp_path / "bridge", url, store_url=store_url, extra=f"\n[metrics]\nport = {port}\n"
    )
    phone = bridge.device(tmp_path, "phone-1", "phone", url, "u-1")
    fridge = bridge.device(tmp_path, "fridge-1", "fridge", url, "u-1")
    # A second user with a phone enrolled alike: `pool apply` decides the same application for
    # them from the command line, the figure the phone's application must reproduce.
    bridge.device(tmp_path, "phone-2", "phone", url, "u-2")
    bridge.start()
    team = Team(private_broker, bridge)
    phone.start("--offline-ok")
    try:
        queued = cli("apply", "--config", str(phone.config), "--applicant", str(GOOD))
        assert "application queued" in queued.stdout
        assert wait(lambda: len(team.applications()) == 1, 30), bridge.log()[-3000:]
        assert wait(lambda: "u-1" in team.states, 10)
        ((topic, decision),) = team.applications()
        state = team.states["u-1"]

        # Replay the application as stored (same seq, same signature): nothing happens.
        (row,) = bridge.query("SELECT envelope, seq FROM events WHERE kind = 16")
        sealed, seq = bytes(row[0]), int(row[1])  # type: ignore[call-overload]
        app_topic = topics.device("test", "phone-1", Channel.APPLICATION)
        publish(private_broker, phone.login, app_topic, sealed)
        # A fridge of the same user applies, signed with its own key: refused with a reason.
        fridge_key = nacl.signing.SigningKey(bytes.fromhex((fridge.dir / "device.key").read_text()))
        applicant = json.loads(GOOD.read_text())
        fridge_app = m.Application(sender="fridge-1", seq=1, boot=1, ts_ms=1, applicant=applicant)
        publish(
            private_broker,
            fridge.login,
            topics.device("test", "fridge-1", Channel.APPLICATION),
            envelope.seal(fridge_app, fridge_key),
        )
        assert wait(lambda: any(r.device == "fridge-1" for r in team.risk), 20), bridge.log()
        # The replay reached the bridge and was refused as a duplicate (counted, not stored).
        assert wait(lambda: replays(port) >= 1, 20), bridge.log()[-3000:]
        time.sleep(1)  # time for anything the replay might (wrongly) have caused
    finally:
        phone.stop()
        bridge.stop()
        team.close()

    # The decision: signed by the bridge (Team checked it), on the user's decision topic.
    assert topic == "cp/v1/test/pool/u-1/decision"
    assert (decision.user, decision.device, decision.device_seq) == ("u-1", "phone-1", seq)
    assert (decision.action, decision.result) == ("apply", "approve")
    assert decision.decision in ("allow", "step_up")  # the phone's risk verdict lets it act
    assert decision.reasons, "an approval still lists what weighed most"
    # The pool opened with the limit and rate the command line decides for the same case.
    cli_run = run_cli("cloud-bridge", "pool", "apply", "--user", "u-2", "--applicant", str(GOOD),
                      "--db", bridge.store_url, "--json", "--no-publish")  # fmt: skip
    by_cli = json.loads(cli_run.stdout)["decision"]
    assert by_cli["outcome"] == "approve"
    assert decision.amount_fen == by_cli["limit_fen"] == state.limit_fen
    assert state.rate_bps == by_cli["rate_bps"] and state.status == "open"
    assert 10_000 <= state.limit_fen <= 5_000_000 and state.limit_fen % 10_000 == 0
    # The verdict's reasons (if any), then the approval's ranked reasons, as the command line's.
    assert list(decision.reasons[-len(by_cli["reasons"]) :]) == by_cli["reasons"]
    # Opened once: one command, one `opened` event, one decision, whatever was replayed.
    opens = bridge.query("SELECT idem_key, result FROM pool_commands WHERE user_id = 'u-1'")
    assert opens == [(f"phone-1:{seq}:apply", "ok")]
    assert len(team.applications()) == 1
    # The fridge's application: refused (not logged, not decided), with its reason.
    (note,) = [r for r in team.risk if r.device == "fridge-1"]
    assert (note.category, note.reason) == ("rejection", "wrong_device_kind")
    rejected = bridge.query("SELECT reason FROM rejections WHERE device_id = 'fridge-1'")
    assert rejected == [("wrong_device_kind",)]
    assert bridge.query("SELECT count(*) FROM events WHERE device_id = 'fridge-1'") == [(0,)]
    assert cose.peek_payload(sealed)  # the replayed copy was a real signed application

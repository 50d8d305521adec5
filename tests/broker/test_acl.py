"""The shipped broker configuration against a real Mosquitto: who may connect, publish, read.

Accounts come from the real CLI (`cloud-bridge init`, `edge-agent provision`, `cloud-bridge
devices enroll`, `broker-account`), which writes the files into the broker's auth directory and
reloads it through its pid file, exactly as an operator's set-up would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.agent.harness import Device, provision
from tests.bridge.harness import bridge_cli
from tests.broker.probe import Probe
from tests.harness.mosquitto import Mosquitto

pytestmark = pytest.mark.broker

FLEET = "test"
BASE = f"cp/v1/{FLEET}"


@dataclass
class Setup:
    broker: Mosquitto
    data: Path
    devices: dict[str, Device]
    probes: list[Probe]

    def secret(self, name: str) -> str:
        path = {
            "bridge-1": self.data / "mqtt.pass",
            "observer-1": self.data / "observer.pass",
        }.get(name) or (self.devices[name].dir / "mqtt.pass")
        return path.read_text().strip()

    def probe(
        self, username: str | None, client_id: str | None = None, password: str = ""
    ) -> Probe:
        pw = password or (self.secret(username) if username else None)
        probe = Probe(self.broker.port, client_id or username or "anon", username, pw)
        self.probes.append(probe)
        return probe

    def connected(self, username: str, client_id: str | None = None) -> Probe:
        probe = self.probe(username, client_id)
        assert probe.connect(), f"{username} could not connect: {probe.reason}"
        return probe

    def cli(self, *args: str) -> str:
        return bridge_cli(*args, "--data", str(self.data)).stdout


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("acl")
    broker = Mosquitto(tmp / "mosquitto", secure=True)
    broker.start()
    auth = broker.auth_dir
    data = tmp / "bridge"
    data.mkdir()
    (data / "bridge.toml").write_text(
        f'[bridge]\nid = "bridge-1"\nfleet = "{FLEET}"\n\n'
        f'[mqtt]\nurl = "{broker.url}"\nusername = "bridge-1"\npassword_file = "mqtt.pass"\n\n'
        f'[broker]\ndir = "{auth}"\npid_file = "{broker.pid_file}"\n'
    )
    state = Setup(broker, data, {}, [])
    info = json.loads(state.cli("init", "--json"))
    for device_id, user in (("dev-a", "alice"), ("dev-b", "bob")):
        dev = provision(tmp, device_id, "phone", broker.url, info["public_key"], fleet=FLEET)
        state.cli("devices", "enroll", str(dev.dir / "enrollment.cbor"), "--user", user)
        state.devices[device_id] = dev
    state.cli(
        "broker-account",
        "observer-1",
        "--role",
        "observer",
        "--password-file",
        str(data / "observer.pass"),
    )
    yield state
    for probe in state.probes:
        probe.close()
    broker.stop()


def test_files__hold_hashes_and_no_secret(setup: Setup) -> None:
    passwd = (setup.broker.auth_dir / "passwd").read_text()  # type: ignore[operator]
    users = [line.split(":", 1)[0] for line in passwd.splitlines()]
    assert users == ["bridge-1", "bridge-1-cli", "dev-a", "dev-b", "observer-1"]
    for name in ("bridge-1", "dev-a", "observer-1"):
        assert setup.secret(name) not in passwd
    assert all(line.split(":", 1)[1].startswith("$7$101$") for line in passwd.splitlines())


@pytest.mark.parametrize(
    ("username", "password"),
    [(None, None), ("dev-a", "wrong"), ("nobody", "x"), ("bridge-1", "")],
)
def test_connect__refused_without_the_right_password(
    setup: Setup, username: str | None, password: str | None
) -> None:
    probe = Probe(setup.broker.port, "intruder", username, password)
    setup.probes.append(probe)
    assert not probe.connect()


def test_device__publishes_only_on_its_own_device_channels(setup: Setup) -> None:
    bridge = setup.connected("bridge-1", "bridge-acl-1")
    bridge.subscribe(f"{BASE}/#")
    dev = setup.connected("dev-a")
    forbidden = [
        f"{BASE}/dev-b/report",
        f"{BASE}/dev-b/birth",
        f"{BASE}/dev-a/ack",
        f"{BASE}/dev-a/cmd/ping",
        f"{BASE}/dev-b/ack",
        f"{BASE}/bridge/state",
        f"{BASE}/pool/alice/state",
        f"{BASE}/pool/alice/decision",
        f"{BASE}/risk/dev-a",
        "cp/v1/other/dev-a/report",
    ]
    for topic in forbidden:
        dev.publish(topic)
    dev.publish(f"{BASE}/dev-a/trigger")
    dev.publish(f"{BASE}/dev-a/report", b"marker")
    seen = bridge.until(f"{BASE}/dev-a/report")
    assert [t for t, _ in seen] == [f"{BASE}/dev-a/trigger", f"{BASE}/dev-a/report"]


def test_device__reads_only_its_own_ack_and_cmd_and_the_bridge_state(setup: Setup) -> None:
    dev = setup.connected("dev-a")
    dev.subscribe(
        f"{BASE}/dev-b/ack",
        f"{BASE}/dev-b/cmd/+",
        f"{BASE}/+/report",
        f"{BASE}/pool/#",
        f"{BASE}/dev-a/ack",
        f"{BASE}/dev-a/cmd/+",
        f"{BASE}/bridge/state",
    )
    bridge = setup.connected("bridge-1", "bridge-acl-2")
    for topic in (f"{BASE}/dev-b/ack", f"{BASE}/dev-b/cmd/ping", f"{BASE}/pool/bob/state"):
        bridge.publish(topic)
    bridge.publish(f"{BASE}/dev-a/cmd/ping")
    bridge.publish(f"{BASE}/bridge/state")
    bridge.publish(f"{BASE}/dev-a/ack")
    seen = [t for t, _ in dev.until(f"{BASE}/dev-a/ack")]
    assert seen == [f"{BASE}/dev-a/cmd/ping", f"{BASE}/bridge/state", f"{BASE}/dev-a/ack"]


def test_observer__reads_the_fleet_and_publishes_nothing(setup: Setup) -> None:
    observer = setup.connected("observer-1")
    observer.subscribe(f"{BASE}/#", "cp/v1/other/#")
    bridge = setup.connected("bridge-1", "bridge-acl-3")
    dev = setup.connected("dev-b")
    for topic in (
        f"{BASE}/pool/alice/state",
        f"{BASE}/dev-b/cmd/ping",
        f"{BASE}/observer-1/report",
    ):
        observer.publish(topic, b"forged")
    bridge.publish("cp/v1/other/bridge/state")  # another fleet's tree is not this file's
    dev.publish(f"{BASE}/dev-b/report")
    bridge.publish(f"{BASE}/risk/dev-b")
    bridge.publish(f"{BASE}/pool/bob/decision")
    seen = [t for t, _ in observer.until(f"{BASE}/pool/bob/decision")]
    assert seen == [f"{BASE}/dev-b/report", f"{BASE}/risk/dev-b", f"{BASE}/pool/bob/decision"]


def test_client_id__is_the_username_so_nobody_takes_the_bridge_session(setup: Setup) -> None:
    bridge = setup.connected("bridge-1")
    bridge.subscribe(f"{BASE}/+/report")
    anonymous = setup.probe(None, client_id="bridge-1")
    assert not anonymous.connect()
    device = setup.connected("dev-a", client_id="bridge-1")  # the broker makes it "dev-a"
    device.publish(f"{BASE}/dev-a/report", b"after")
    assert bridge.until(f"{BASE}/dev-a/report")[-1] == (f"{BASE}/dev-a/report", b"after")
    assert not bridge.disconnected.is_set()


def test_oversize__a_payload_over_the_limit_is_not_delivered(setup: Setup) -> None:
    bridge = setup.connected("bridge-1", "bridge-acl-4")
    bridge.subscribe(f"{BASE}/dev-a/report")
    dev = setup.connected("dev-a")
    # One byte over message_size_limit. Mosquitto 2.0.11 answers with a PUBACK whose reason
    # code (0x95) MQTT 5 does not allow there, and paho drops the connection as malformed.
    dev.client.publish(f"{BASE}/dev-a/report", b"o" * 4353, 1)
    assert dev.disconnected.wait(10)
    again = setup.connected("dev-a", client_id="dev-a-again")
    again.publish(f"{BASE}/dev-a/report", b"m" * 4352)  # the largest envelope still passes
    assert bridge.until(f"{BASE}/dev-a/report") == [(f"{BASE}/dev-a/report", b"m" * 4352)]


def test_oversize__a_packet_over_max_packet_size_disconnects_the_sender(setup: Setup) -> None:
    dev = setup.connected("dev-a")
    dev.client.publish(f"{BASE}/dev-a/report", b"o" * 64 * 1024, 1)
    assert dev.disconnected.wait(10)


def test_revoke__disconnects_the_device_and_refuses_it_afterwards(setup: Setup) -> None:
    # Last in this module: it revokes dev-b for good.
    dev = setup.connected("dev-b")
    setup.cli("devices", "revoke", "dev-b")
    assert dev.disconnected.wait(10), "the reload did not disconnect the revoked device"
    again = setup.probe("dev-b", client_id="dev-b-again")
    assert not again.connect()
    passwd = (setup.broker.auth_dir / "passwd").read_text()  # type: ignore[operator]
    assert "dev-b:" not in passwd


def _persistent(setup: Setup, username: str | None, client_id: str) -> Probe:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    probe = setup.probe(username, client_id=client_id)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    probe.client.connect("127.0.0.1", setup.broker.port, clean_start=False, properties=props)
    probe.client.loop_start()
    return probe


def test_quirk__a_refused_connect_with_an_offline_client_id_wipes_its_session(
    setup: Setup,
) -> None:
    """Mosquitto 2.0.11 behaviour documented in docs/operations.md section 4: what the outsider
    can do without credentials. If a Mosquitto upgrade fixes it, this test says so."""
    dev = _persistent(setup, "dev-a", "dev-a")
    assert dev.connected.wait(10)
    dev.subscribe(f"{BASE}/dev-a/cmd/+")
    dev.close()
    bridge = setup.connected("bridge-1", "bridge-acl-5")
    bridge.publish(f"{BASE}/dev-a/cmd/ping", b"queued")  # kept for the offline session
    # Control: without the refused connect, the session and its queued message are there.
    back = _persistent(setup, "dev-a", "dev-a")
    assert back.connected.wait(10)
    assert back.until(f"{BASE}/dev-a/cmd/ping") == [(f"{BASE}/dev-a/cmd/ping", b"queued")]
    back.close()
    bridge.publish(f"{BASE}/dev-a/cmd/ping", b"queued")
    anonymous = setup.probe(None, client_id="dev-a")
    assert not anonymous.connect()
    back = _persistent(setup, "dev-a", "dev-a")
    assert back.connected.wait(10)
    bridge.publish(f"{BASE}/dev-a/cmd/ping", b"after")
    # The subscription went with the session: nothing arrives, not even the later message.
    with pytest.raises(AssertionError, match="nothing on"):
        back.until(f"{BASE}/dev-a/cmd/ping")

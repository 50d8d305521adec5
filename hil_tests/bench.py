"""The bench around the rigs: the broker, the bridge, provisioning, and the bridge's event log.

By default a private Mosquitto with the product's security (passwords, ACLs, client id =
username; tests/harness/mosquitto.py) and a private `cloud-bridge run` that keeps the broker's
files current (tools/fleet/bridge.py), as in production. ``--broker URL --bridge DIR`` points
the suite at the bench's own instead (then scenarios that stop the broker skip).
"""

from __future__ import annotations

import itertools
import json
import signal
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cloud_bridge import keyfile
from hil_tests.rigs.base import KIND_ESP32, Rig
from protocol import cose, envelope, topics
from protocol import messages as m
from tests.harness.mosquitto import Mosquitto
from tools.fleet.bridge import Bridge, BrokerAuth, run_cli
from tools.fleet.devices import provision as provision_agent
from tools.fleet.plan import DeviceSpec, Tuning
from tools.procs import Supervisor

FLEET = "hil"
BRIDGE_READY = ": connected, serving fleet "  # cloud_bridge/server.py, once it subscribed
AGENT_KIND = "phone"  # the Linux agent's scene for the scenarios: the plain report stream
ESP32_KIND = "mcu"


class BenchError(RuntimeError):
    """The bench could not be set up (broker, bridge, provisioning)."""


class Bench:
    def __init__(
        self,
        root: Path,
        interval_s: float,
        broker_url: str | None = None,
        bridge_data: Path | None = None,
    ) -> None:
        self.root = root
        self.sup = Supervisor()
        self.broker: Mosquitto | None = None
        self._ids = itertools.count(1)
        if broker_url is not None and bridge_data is None:
            raise BenchError(
                "--broker needs --bridge DIR: the data directory of the bridge that serves that "
                "broker (its key signs the acks the scenarios judge)"
            )
        if broker_url is None:
            self.broker = Mosquitto(root / "broker", secure=True, max_queued_messages=100_000)
            self.broker.start()
            broker_url = self.broker.url
        self.broker_url = broker_url
        if bridge_data is not None:
            self.bridge = Bridge.load(bridge_data)
            self.owns_bridge = False
        else:
            auth = None
            if self.broker is not None and self.broker.auth_dir is not None:
                auth = BrokerAuth(self.broker.auth_dir, self.broker.pid_file)
            self.bridge = Bridge.create(root / "bridge", FLEET, broker_url, "5", auth=auth)
            self.owns_bridge = True
            self.start_bridge()
        self.tuning = Tuning(
            interval_s=interval_s,
            status_interval_s=0.5,
            credentials=bool(self.bridge.cfg.username),
        )

    @property
    def broker_addr(self) -> tuple[str, int]:
        host_port = self.broker_url.split("://", 1)[-1]
        host, port = host_port.rsplit(":", 1)
        return host, int(port)

    def start_bridge(self, timeout_s: float = 60) -> None:
        seen = self._bridge_log().count(BRIDGE_READY)
        self.bridge.start(self.sup)
        deadline = time.monotonic() + timeout_s
        while self._bridge_log().count(BRIDGE_READY) <= seen:
            if self.bridge.proc is not None and self.bridge.proc.poll() is not None:
                raise BenchError(f"the bridge exited:\n{self.bridge.log_tail()}")
            if time.monotonic() > deadline:
                raise BenchError(f"the bridge did not subscribe:\n{self.bridge.log_tail()}")
            time.sleep(0.1)

    def pause_bridge(self) -> bool:
        """SIGSTOP the bench's own bridge (a slow cloud: messages queue at the broker for it);
        False when the bridge is not the suite's to pause."""
        if not self.owns_bridge or self.bridge.proc is None:
            return False
        self.bridge.proc.send_signal(signal.SIGSTOP)
        return True

    def resume_bridge(self) -> None:
        if self.owns_bridge and self.bridge.proc is not None:
            self.bridge.proc.send_signal(signal.SIGCONT)

    def _bridge_log(self) -> str:
        try:
            return self.bridge.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def device_id(self, scenario: str, rig: Rig) -> str:
        short = "esp" if rig.kind == KIND_ESP32 else "agt"
        return f"{scenario.replace('_', '-')}-{short}-{next(self._ids)}"

    def provision(self, rig: Rig, scenario: str) -> str:
        """Provision a fresh device for ``rig``, enroll it, install it on the rig; its id."""
        device_id = self.device_id(scenario, rig)
        url = rig.connect_url(self.broker_url)
        user = f"u-{device_id}"
        devices = self.root / "devices"
        if rig.kind == KIND_ESP32:
            out = devices / device_id
            run_cli(
                "edge-agent", "provision", "--device-id", device_id, "--fleet", self.bridge.fleet,
                "--kind", ESP32_KIND, "--target", "esp32", "--out", str(out),
                "--bridge-key", self.bridge.public_key_hex, "--mqtt-url", url, "--json",
            )  # fmt: skip
            self.bridge.enroll(out / "enrollment.cbor", user)
            rig.install(out / "board")
        else:
            spec = DeviceSpec(device_id, AGENT_KIND, user, seed=next(self._ids))
            device = provision_agent(spec, devices, self.bridge, url, self.tuning)
            self.bridge.enroll(device.dir / "enrollment.cbor", user)
            rig.install(device.dir)
        rig.device_id = device_id
        return device_id

    def seqs(self, device_id: str) -> list[int]:
        """The data sequence numbers the bridge stored for the device, in order."""
        return self.bridge.event_seqs().get(device_id, [])

    def reports(self, device_id: str) -> list[m.Report]:
        """Every stored report of the device, decoded, in sequence order."""
        out = []
        for row in self.bridge.events(device_id, int(m.Kind.REPORT)):
            msg = m.decode(cose.peek_payload(row.envelope))
            if isinstance(msg, m.Report):
                out.append(msg)
        return out

    def report_times_ms(self, device_id: str) -> list[int]:
        """The device's own timestamp (ts_ms) of every stored report, in sequence order."""
        return [r.ts_ms for r in self.reports(device_id)]

    def skews_ms(self, device_id: str) -> list[tuple[int, int]]:
        """(seq, the report's ts_ms minus the bridge's receive time) of every stored report:
        the device's wall clock against the bridge's."""
        out = []
        for row in self.bridge.events(device_id, int(m.Kind.REPORT)):
            msg = m.decode_as(cose.peek_payload(row.envelope), m.Report)
            out.append((row.seq, msg.ts_ms - row.received_ms))
        return out

    def kids(self, device_id: str) -> list[tuple[int, bytes]]:
        """(seq, the signing key's kid) of every stored event of the device."""
        return [(row.seq, cose.peek_kid(row.envelope)) for row in self.bridge.events(device_id)]

    def rotate(self, device_id: str) -> None:
        """`cloud-bridge devices rotate`: the operator asks the device for a new key."""
        run_cli("cloud-bridge", "devices", "rotate", device_id, "--data", str(self.bridge.data))

    def key_generation(self, device_id: str) -> int:
        out = run_cli("cloud-bridge", "devices", "list", "--json", "--data", str(self.bridge.data))
        for d in json.loads(out):
            if d.get("device_id") == device_id:
                return int(d.get("key_generation", 0))
        return 0

    def send_command(self, device_id: str, name: str, args: dict[str, object]) -> int:
        """A command signed with the bridge's key, published as the operator's tools do (with a
        bridge-role account of its own); its sequence number, which the answer carries."""
        password_file = self.root / "operator.pass"
        if not password_file.exists():
            run_cli(
                "cloud-bridge", "broker-account", "operator", "--role", "bridge",
                "--password-file", str(password_file), "--data", str(self.bridge.data),
            )  # fmt: skip
        seq = next(self._ids)
        cmd = m.Command(
            sender="operator", seq=seq, boot=1, ts_ms=time.time_ns() // 1_000_000,
            device=device_id, command=name, args=args,  # type: ignore[arg-type]
        )  # fmt: skip
        key = keyfile.load(self.bridge.cfg.key_path)
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="operator")
        client.username_pw_set("operator", password_file.read_text().strip())
        host, port = self.broker_addr
        client.connect(host, port)
        client.loop_start()
        try:
            topic = topics.command(self.bridge.fleet, device_id, name)
            client.publish(topic, envelope.seal(cmd, key), 1).wait_for_publish(10)
        finally:
            client.loop_stop()
            client.disconnect()
        return seq

    def answers(self, device_id: str, cmd_seq: int) -> list[str]:
        """The cmd_result of every stored report answering command ``cmd_seq``."""
        return [r.cmd_result for r in self.reports(device_id) if r.cmd_seq == cmd_seq]

    def conflicts(self, device_id: str) -> list[str]:
        """The bridge's stored refusals of the device that say a number came twice with other
        content (judge.py's seq_conflict): a reused number after a power cut shows here."""
        details = [r.detail for r in self.bridge.rejections(device_id)]
        return [d for d in details if "seq_conflict" in d]

    def close(self) -> None:
        if self.owns_bridge:
            self.bridge.stop(self.sup)
        self.sup.close()
        if self.broker is not None:
            self.broker.stop()


def status(rig: Rig) -> dict[str, object]:
    """The agent's status.json (link, outbox counters), or {} before the first one."""
    try:
        doc = json.loads(rig.read_file("status.json"))
    except (OSError, ValueError, RuntimeError):
        return {}
    return doc if isinstance(doc, dict) else {}

"""The bridge under test in the bridge suite: a data directory with an enrolled fleet, a
`cloud-bridge run` process started and stopped around it, and what it stored.

Enrollment and pools go through the bridge's own registry and pool service, as the
`cloud-bridge devices enroll` and `pool open` commands do (a CLI process per device would take
minutes for 10,000). Reads go through the store's repositories.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import nacl.signing
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cloud_bridge.pool.commands import OpenPool
from cloud_bridge.pool.service import PoolService
from cloud_bridge.registry import Registry
from cloud_bridge.store import Store, open_store, retention_repo
from protocol import envelope, topics
from protocol import messages as m
from protocol.errors import ProtocolError
from tools.bench.bridge_load import Fleet
from tools.bench.common import Context, pg_schema
from tools.fleet.bridge import command, run_cli

ROOT = Path(__file__).resolve().parents[2]
FLEET = "bench"
POOL_LIMIT_FEN = 10**8


@dataclass(frozen=True, slots=True)
class Drained:
    """A bridge's drain of a backlog: reports stored per second, its CPU seconds per report."""

    rate: float
    cpu_s: float


class Alerts:
    """Counts what the bridge publishes on the fleet's risk topics (alerts and refusals) while
    open: `with Alerts(port) as alerts: ...; alerts.count`."""

    def __init__(self, port: int) -> None:
        self.count = 0
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self._client.on_message = self._on_message
        self._port = port

    def _on_message(self, _c: mqtt.Client, _u: object, _msg: mqtt.MQTTMessage) -> None:
        self.count += 1  # the network thread is the only writer

    def __enter__(self) -> Alerts:
        self._client.connect("127.0.0.1", self._port)
        self._client.subscribe(f"{topics.PREFIX}/{FLEET}/risk/+", qos=1)
        self._client.loop_start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.loop_stop()
        self._client.disconnect()


class Setup:
    """A bridge data directory with a fleet enrolled, each device with a pool of its own."""

    def __init__(self, ctx: Context, port: int, pg_dsn: str | None, fleet: Fleet) -> None:
        self.data = ctx.workdir / f"bridge-{secrets.token_hex(3)}"
        self._cleanup = contextlib.ExitStack()  # every setup starts empty, and is dropped after
        store_url = self._cleanup.enter_context(pg_schema(pg_dsn)) if pg_dsn else None
        run_cli(
            "cloud-bridge",
            "init",
            "--data",
            str(self.data),
            "--fleet",
            FLEET,
            "--mqtt-url",
            f"mqtt://127.0.0.1:{port}",
        )
        self.store_url = store_url or str(self.data / "bridge.sqlite3")
        store_line = f'dsn = "{store_url}"' if store_url else 'path = "bridge.sqlite3"'
        (self.data / "bridge.toml").write_text(
            f'[bridge]\nid = "bench-1"\nfleet = "{FLEET}"\n\n[mqtt]\n'
            f'url = "mqtt://127.0.0.1:{port}"\n\n[store]\n{store_line}\n'
        )
        self.fleet = fleet
        with open_store(self.store_url) as store:
            with store.transaction() as tx:
                registry = Registry()
                for device in fleet:
                    registry.enroll(tx, device.enrollment(FLEET), device.user, 1, fleet=FLEET)
            PoolService(store).execute_many(
                [OpenPool(user=d.user, key="open", limit_fen=POOL_LIMIT_FEN) for d in fleet]
            )
        self.port = port
        self.bridge_key = nacl.signing.VerifyKey(
            bytes.fromhex(
                json.loads(run_cli("cloud-bridge", "init", "--data", str(self.data), "--json"))[
                    "public_key"
                ]
            )
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self._store: Store | None = None

    def start(self, timeout_s: float = 120) -> None:
        """Start the bridge and wait until it says online: its subscriptions (and on the first
        start its persistent session) are in place then, since it subscribes before it
        announces itself. A fixed wait is not enough on a busy machine, where loading the
        bridge can take seconds: messages queued before its session exists are lost."""
        online = threading.Event()
        state_topic = topics.bridge_state(FLEET)

        def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
            with contextlib.suppress(ProtocolError):
                _s, state = envelope.unseal(bytes(msg.payload), lambda kid: self.bridge_key)
                if isinstance(state, m.BridgeState) and state.online:
                    online.set()

        watch = mqtt.Client(CallbackAPIVersion.VERSION2)
        watch.on_message = on_message
        watch.connect("127.0.0.1", self.port)
        watch.subscribe(state_topic, qos=1)
        watch.loop_start()
        try:
            self._launch()
            if not online.wait(timeout_s):
                raise RuntimeError(f"the bridge did not say online in {timeout_s:.0f} s")
        finally:
            watch.loop_stop()
            watch.disconnect()

    def _launch(self) -> None:
        self.log = open(self.data / "bridge.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                *command("cloud-bridge"),
                "run",
                "--data",
                str(self.data),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            stdout=self.log,
            stderr=self.log,
        )

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(30)
            self.proc = None
            self.log.close()

    def close(self) -> None:
        self.stop()
        self._cleanup.close()

    def counts(self) -> tuple[int, int]:
        """(stored events, stored rejections), through one connection kept for the polls."""
        if self._store is None:
            self._store = self._cleanup.enter_context(open_store(self.store_url))
        with self._store.transaction() as tx:
            return retention_repo.count(tx, "events"), retention_repo.count(tx, "rejections")

    def events(self) -> int:
        return self.counts()[0]


def publisher(port: int) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def queue(port: int, batch: list[tuple[str, bytes]]) -> None:
    """Publish every (topic, payload) at QoS 1 and wait until the broker has them all."""
    pub = publisher(port)
    for info in [pub.publish(t, p, qos=1) for t, p in batch]:
        info.wait_for_publish(60)
    pub.loop_stop()
    pub.disconnect()

"""Light-weight simulated devices for the reconnect storm: one thread and one MQTT connection
each, no sensors or outbox, reconnecting with the agent's own policy (agent.backoff.Backoff
with the agent's default base and caps) so the storm is the product's, not the bench's.

They log in with observer accounts written into the bridge's registry through its store API
(cloud_bridge.store.broker_repo) and rendered for the broker by `cloud-bridge broker-config`,
so the broker keeps the product's ACLs for them.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.backoff import Backoff
from agent.config import MqttConfig
from cloud_bridge.store import broker_repo, open_store
from protocol import mqtt_password
from tools.fleet.bridge import Bridge, run_cli

PASSWORD = "storm-device-password"


def admit(bridge: Bridge, names: list[str]) -> None:
    """Observer accounts ``names`` (one shared password) in the bridge's registry and broker."""
    hashed = mqtt_password.hash_password(PASSWORD)
    now_ms = time.time_ns() // 1_000_000
    with open_store(bridge.store_url) as store, store.transaction() as tx:
        for name in names:
            broker_repo.put(tx, name, "observer", hashed, now_ms)
    run_cli("cloud-bridge", "broker-config", "--data", str(bridge.data))


@dataclass
class StormDevice:
    name: str
    host: str
    port: int
    seed: int
    attempts: list[float] = field(default_factory=list)  # monotonic time of each attempt
    connects: list[float] = field(default_factory=list)  # monotonic time of each CONNACK
    connected: bool = False

    def __post_init__(self) -> None:
        import random

        defaults = MqttConfig()
        self.backoff = Backoff(
            defaults.backoff_base_s,
            defaults.backoff_cap_s,
            defaults.refused_cap_s,
            rng=random.Random(self.seed),
        )
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.name,
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=False,
        )
        self.client.username_pw_set(self.name, PASSWORD)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def _on_connect(self, _c: object, _u: object, _f: object, reason: object, _p: object) -> None:
        if not getattr(reason, "is_failure", False):
            self.connected = True
            self.connects.append(time.monotonic())
            self.backoff.reset()

    def _on_disconnect(self, *_args: object) -> None:
        self.connected = False

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        first = True
        while not self._stop.is_set():
            if not self.connected and self.client.socket() is None:
                self.attempts.append(time.monotonic())
                try:
                    if first:
                        self.client.connect(self.host, self.port, keepalive=30)
                        first = False
                    else:
                        self.client.reconnect()
                except OSError as exc:
                    refused = isinstance(exc, ConnectionRefusedError)
                    self._stop.wait(self.backoff.next_delay(refused))
                    continue
            rc = self.client.loop(timeout=0.2)
            if rc != mqtt.MQTT_ERR_SUCCESS and not self.connected:
                self._stop.wait(self.backoff.next_delay(refused=False))

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self._thread.join(5)


def peak_per_second(times: list[float], since: float) -> int:
    """The most events in any one-second bucket from ``since`` on."""
    buckets: dict[int, int] = {}
    for t in times:
        if t >= since:
            buckets[int(t - since)] = buckets.get(int(t - since), 0) + 1
    return max(buckets.values(), default=0)

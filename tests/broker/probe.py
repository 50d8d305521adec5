"""A plain MQTT 5 client for broker tests: connect with given credentials, publish, and see
what arrives, in order.

Whether the broker refused a publish is read from what a subscriber receives: a refused
message published before an allowed "marker" would have arrived before the marker (one
publisher, one subscriber: MQTT keeps the order), so a test waits for the marker and then
knows, without sleeping, that the refused one was not delivered.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

TIMEOUT_S = 10.0


@dataclass
class Probe:
    port: int
    client_id: str
    username: str | None = None
    password: str | None = None
    received: queue.Queue[tuple[str, bytes]] = field(default_factory=queue.Queue)
    connected: threading.Event = field(default_factory=threading.Event)
    disconnected: threading.Event = field(default_factory=threading.Event)
    reason: object = None  # the CONNACK (or DISCONNECT) reason code

    def __post_init__(self) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            reconnect_on_failure=False,
        )
        if self.username is not None:
            self.client.username_pw_set(self.username, self.password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = lambda _c, _u, msg: self.received.put((msg.topic, msg.payload))

    def _on_connect(self, _c: object, _u: object, _f: object, rc: object, _p: object) -> None:
        self.reason = rc
        if not getattr(rc, "is_failure", True):
            self.connected.set()
        else:
            self.disconnected.set()

    def _on_disconnect(self, _c: object, _u: object, _f: object, rc: object, _p: object) -> None:
        if self.connected.is_set():
            self.reason = rc
        self.disconnected.set()

    def connect(self) -> bool:
        """Whether the broker accepted the connection (CONNACK success)."""
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            if self.connected.is_set():
                return True
            if self.disconnected.is_set():
                return False
            time.sleep(0.01)
        raise AssertionError(f"{self.client_id}: no CONNACK within {TIMEOUT_S} s")

    def subscribe(self, *filters: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *_a: done.set()
        self.client.subscribe([(f, 1) for f in filters])
        assert done.wait(TIMEOUT_S), f"{self.client_id}: no SUBACK"

    def publish(self, topic: str, payload: bytes = b"x", retain: bool = False) -> None:
        """Publish at QoS 1 and wait for the PUBACK (sent whether or not the ACL allowed it)."""
        info = self.client.publish(topic, payload, 1, retain)
        info.wait_for_publish(TIMEOUT_S)

    def until(self, topic: str) -> list[tuple[str, bytes]]:
        """Everything received up to and including the first message on `topic`."""
        seen = []
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                item = self.received.get(timeout=0.1)
            except queue.Empty:
                continue
            seen.append(item)
            if item[0] == topic:
                return seen
        raise AssertionError(f"{self.client_id}: nothing on {topic}; got {seen}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

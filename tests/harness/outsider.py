"""An outsider on an open broker (no credentials, a client id of its own): publishes whatever it
likes, retained, and reads what a new subscriber would find on a retained topic."""

from __future__ import annotations

import itertools
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from tests.harness.mosquitto import Mosquitto

_ids = itertools.count(1)


class Outsider:
    """One MQTT 5 connection of someone who is not part of the system."""

    def __init__(self, broker: Mosquitto, client_id: str = "") -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"outsider-{next(_ids)}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.seen: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.seen.append((msg.topic, bytes(msg.payload)))

    def watch(self, topic: str) -> None:
        self.client.subscribe(topic, qos=1)

    def messages(self, topic: str) -> list[bytes]:
        with self._lock:
            return [p for t, p in self.seen if t == topic]

    def publish(self, topic: str, payload: bytes, retain: bool = True) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def retained(broker: Mosquitto, topic: str, timeout_s: float = 2.0) -> bytes | None:
    """The retained message a new subscriber to `topic` gets, or None when there is none."""
    got: list[bytes] = []
    arrived = threading.Event()

    def on_message(_c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        if msg.retain and not got:
            got.append(bytes(msg.payload))
            arrived.set()

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"reader-{next(_ids)}",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        arrived.wait(timeout_s)
    finally:
        client.disconnect()
        client.loop_stop()
    return got[0] if got else None

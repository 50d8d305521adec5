"""The harness itself: a private broker that really stops, restarts and keeps sessions."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
import psycopg
import pytest

from tests.harness.mosquitto import Mosquitto


def _client(broker: Mosquitto, client_id: str, clean: bool) -> mqtt.Client:
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
    )
    props = mqtt.Properties(mqtt.PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0 if clean else 3600
    client.connect(broker.host, broker.port, clean_start=clean, properties=props)
    return client


def test_open_broker__stop_refuses_restart_keeps_queued_messages(open_broker: Mosquitto):
    got: list[bytes] = []
    arrived = threading.Event()

    sub = _client(open_broker, "harness-sub", clean=False)
    sub.on_message = lambda c, u, msg: (got.append(msg.payload), arrived.set())
    sub.loop_start()
    sub.subscribe("harness/t", qos=1)
    sub.disconnect()
    sub.loop_stop()

    pub = _client(open_broker, "harness-pub", clean=True)
    pub.loop_start()
    pub.publish("harness/t", b"queued while offline", qos=1).wait_for_publish(5)
    pub.disconnect()
    pub.loop_stop()

    open_broker.restart()  # persistence on: the queued message survives

    sub = _client(open_broker, "harness-sub", clean=False)
    sub.on_message = lambda c, u, msg: (got.append(msg.payload), arrived.set())
    sub.loop_start()
    assert arrived.wait(5)
    sub.disconnect()
    sub.loop_stop()
    assert got == [b"queued while offline"]

    open_broker.stop()
    with pytest.raises(ConnectionRefusedError):
        _client(open_broker, "late", clean=True)


def test_broker_without_persistence_loses_its_queue(broker_factory):
    mq = broker_factory(persistence=False, secure=False)
    sub = _client(mq, "volatile-sub", clean=False)
    sub.loop_start()
    sub.subscribe("harness/v", qos=1)
    sub.disconnect()
    sub.loop_stop()
    pub = _client(mq, "volatile-pub", clean=True)
    pub.loop_start()
    pub.publish("harness/v", b"x", qos=1).wait_for_publish(5)
    pub.disconnect()
    pub.loop_stop()
    mq.restart()
    got: list[bytes] = []
    sub = _client(mq, "volatile-sub", clean=False)
    sub.on_message = lambda c, u, msg: got.append(msg.payload)
    sub.loop_start()
    threading.Event().wait(0.5)
    sub.disconnect()
    sub.loop_stop()
    assert got == []


@pytest.mark.postgres
def test_pg_fixture_gives_a_private_schema(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("CREATE TABLE probe (n int)")
        conn.execute("INSERT INTO probe VALUES (1)")
        schema = conn.execute("SELECT current_schema()").fetchone()
    assert schema is not None and schema[0].startswith("t_")

"""A hung link in the firmware's MQTT client (issue 18 item 3): a broker that accepts TCP but
never answers is detected within two keepalives, and the reconnector then gets a working
connection. FW_HUNG_PORT answers CONNACK and then nothing; FW_SWALLOW_PORT never answers at
all; FW_MQTT_PORT is the real broker (tests/firmware/test_suite.py sets them up)."""

import os
import random
import socket
import time

from backoff import Backoff
from mqtt import MQTTClient
from reconnect import Reconnector

HEAPSIZE = "64k"
NEEDS_BROKER = True

KEEPALIVE_S = 1
MARGIN_MS = 300  # the loop's poll granularity


def _opener(port):
    def open_socket():
        s = socket.socket()
        s.settimeout(2)
        s.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
        return s

    return open_socket


def test_a_broker_that_stops_answering_is_detected_within_two_keepalives():
    port = [int(os.getenv("FW_HUNG_PORT"))]
    client = MQTTClient(
        "fw-hung-%d" % random.getrandbits(20),
        lambda: _opener(port[0])(),
        keepalive_s=KEEPALIVE_S,
        timeout_ms=KEEPALIVE_S * 1000,
    )
    client.connect()  # the CONNACK comes through; from then on nothing does
    start = time.ticks_ms()
    detected = None
    while time.ticks_diff(time.ticks_ms(), start) < 10 * KEEPALIVE_S * 1000:
        try:
            client.tick()
            client.poll(20)
        except OSError:
            detected = time.ticks_diff(time.ticks_ms(), start)
            break
    assert detected is not None, "a hung broker was never detected"
    print("hung session detected after %d ms (keepalive %d s)" % (detected, KEEPALIVE_S))
    assert detected <= 2 * KEEPALIVE_S * 1000 + MARGIN_MS, detected
    # recovery: the reconnector's next attempt reaches a broker that answers
    client.close()
    port[0] = int(os.getenv("FW_MQTT_PORT"))
    link = Reconnector(client, Backoff(random.getrandbits, base_ms=20, cap_ms=200))
    link.lost(time.ticks_ms(), OSError(110))
    while not link.step(time.ticks_ms()):
        time.sleep_ms(5)
    acked = []
    client.on_puback = acked.append
    mid = client.publish("fw-test/hung/%d" % random.getrandbits(20), b"back", qos=1)
    start = time.ticks_ms()
    while not acked and time.ticks_diff(time.ticks_ms(), start) < 5000:
        client.poll(20)
    assert acked == [mid], acked
    client.disconnect()


def test_a_broker_that_never_answers_connect_is_left_within_a_keepalive():
    client = MQTTClient(
        "fw-swallow", _opener(int(os.getenv("FW_SWALLOW_PORT"))),
        keepalive_s=KEEPALIVE_S, timeout_ms=KEEPALIVE_S * 1000,
    )  # fmt: skip
    start = time.ticks_ms()
    try:
        client.connect()
    except OSError:
        elapsed = time.ticks_diff(time.ticks_ms(), start)
        print("no CONNACK detected after %d ms" % elapsed)
        assert elapsed <= 2 * KEEPALIVE_S * 1000 + MARGIN_MS, elapsed
        assert not client.connected
        return
    raise AssertionError("connected to a server that never answers")

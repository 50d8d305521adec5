"""The MQTT client against a real Mosquitto (port in FW_MQTT_PORT; tests/firmware starts it)."""

import os
import random
import socket
import time

from mqtt import MQTTClient, MQTTError

HEAPSIZE = "64k"
NEEDS_BROKER = True


class CountingSocket:
    """A real socket that counts the writes made on it."""

    def __init__(self, sock):
        self.sock = sock
        self.writes = 0

    def write(self, data):
        self.writes += 1
        return self.sock.write(data)

    def recv(self, n):
        return self.sock.recv(n)

    def settimeout(self, t):
        self.sock.settimeout(t)

    def close(self):
        self.sock.close()


def _address(port):
    return socket.getaddrinfo("127.0.0.1", port)[0][-1]


def opener(port=None, opened=None):
    port = port or int(os.getenv("FW_MQTT_PORT"))

    def open_socket():
        s = socket.socket()
        s.settimeout(2)
        s.connect(_address(port))
        s = CountingSocket(s)
        if opened is not None:
            opened.append(s)
        return s

    return open_socket


def _topic(name):
    return "fw-test/%d/%s" % (random.getrandbits(30), name)


def _pump(clients, until, timeout_ms=5000):
    start = time.ticks_ms()
    while not until():
        if time.ticks_diff(time.ticks_ms(), start) > timeout_ms:
            raise AssertionError("timed out")
        for c in clients:
            c.poll(10)


def test_qos1_round_trip_with_one_write_per_packet():
    topic = _topic("qos1")
    got = []
    sub = MQTTClient("fw-sub-%d" % random.getrandbits(20), opener())
    sub.on_message = lambda t, payload, retain: got.append((t, bytes(payload)))
    subacks = []
    sub.on_suback = lambda pid, granted: subacks.append((pid, bytes(granted)))
    sub.connect()
    pid = sub.subscribe(topic, qos=1)
    _pump([sub], lambda: subacks)
    assert subacks == [(pid, b"\x01")]
    sockets = []
    pub = MQTTClient("fw-pub-%d" % random.getrandbits(20), opener(opened=sockets))
    acked = []
    pub.on_puback = acked.append
    pub.connect()
    pids = [pub.publish(topic, bytes([i]) * (i * 13), qos=1) for i in range(20)]
    _pump([pub, sub], lambda: len(acked) == 20 and len(got) == 20)
    assert sorted(acked) == sorted(pids)
    assert got == [(topic, bytes([i]) * (i * 13)) for i in range(20)]
    # CONNECT and 20 PUBLISHes: one socket write each
    assert sockets[0].writes == pub.writes == 21
    pub.disconnect()
    sub.disconnect()


def test_the_last_will_is_published_on_an_abrupt_close_only():
    topic = _topic("will")
    got = []
    watcher = MQTTClient("fw-watch-%d" % random.getrandbits(20), opener())
    watcher.on_message = lambda t, payload, retain: got.append(bytes(payload))
    watcher.connect()
    watcher.subscribe(topic, qos=1)
    _pump([watcher], lambda: True)
    clean = MQTTClient("fw-clean-%d" % random.getrandbits(20), opener())
    clean.connect(will=(topic, b"clean", 1, False))
    clean.disconnect()
    lost = MQTTClient("fw-lost-%d" % random.getrandbits(20), opener())
    lost.connect(will=(topic, b"lost", 1, False))
    lost.close()
    _pump([watcher], lambda: got)
    assert got == [b"lost"]
    watcher.disconnect()


def test_keepalive_pings_keep_an_idle_connection_and_silence_is_detected():
    alive = MQTTClient("fw-ka-%d" % random.getrandbits(20), opener(), keepalive_s=1)
    alive.connect()
    silent = MQTTClient("fw-si-%d" % random.getrandbits(20), opener(), keepalive_s=1)
    silent.connect()
    start = time.ticks_ms()
    dropped = False
    while time.ticks_diff(time.ticks_ms(), start) < 8000:
        alive.tick()
        alive.poll(50)
        try:
            silent.poll(0)  # listens but never pings: the broker must drop it after 1.5 s
        except OSError:
            dropped = True
            break
    while time.ticks_diff(time.ticks_ms(), start) < 2600:
        alive.tick()
        alive.poll(50)
    assert dropped, "the broker kept a client that never pinged"
    assert alive.connected and alive.writes >= 3  # CONNECT and at least two PINGREQs
    alive.disconnect()


def test_connect_times_out_against_a_server_that_never_answers():
    # FW_SILENT_PORT: a socket that listens and never accepts (tests/firmware opens it)
    client = MQTTClient("fw-to", opener(int(os.getenv("FW_SILENT_PORT"))), timeout_ms=300)
    start = time.ticks_ms()
    try:
        client.connect()
    except OSError:
        elapsed = time.ticks_diff(time.ticks_ms(), start)
        assert 250 <= elapsed < 2000, elapsed
        assert not client.connected
        return
    raise AssertionError("connected to a silent server")


def test_a_refused_connect_raises_the_brokers_return_code():
    client = MQTTClient("", opener())
    try:
        client.connect(clean_session=False)  # an empty id needs a clean session: code 2
    except MQTTError as exc:
        assert exc.code == 2
        assert not client.connected
        return
    raise AssertionError("the broker accepted an empty id without a clean session")


def test_reconnects_with_backoff_while_the_broker_is_away_then_resubscribes():
    from backoff import Backoff
    from reconnect import Reconnector

    port = [int(os.getenv("FW_DEAD_PORT"))]  # nothing listens there: the broker is away

    def open_socket():
        s = socket.socket()
        s.settimeout(2)
        s.connect(_address(port[0]))
        return s

    topic = _topic("again")
    got = []
    client = MQTTClient("fw-re-%d" % random.getrandbits(20), open_socket)
    client.on_message = lambda t, payload, retain: got.append(bytes(payload))
    random.seed(11)
    backoff = Backoff(random.getrandbits, base_ms=20, cap_ms=2000, refused_cap_ms=160)
    link = Reconnector(client, backoff, on_connect=lambda present: client.subscribe(topic, 1))
    delays = []  # what each failed attempt scheduled (not measured gaps: the host may be busy)
    while link.attempts < 6:
        before = link.attempts
        now = time.ticks_ms()
        assert not link.step(now)
        if link.attempts > before:
            delays.append(time.ticks_diff(link.next_attempt_ms, now))
        time.sleep_ms(2)
    assert len(delays) == 6 and min(delays) >= 0, delays
    assert max(delays) <= 160, delays  # refused: under the lower cap
    assert max(delays) > 20, delays  # and it did back off
    assert link.last_error.args[0] == 111
    port[0] = int(os.getenv("FW_MQTT_PORT"))  # the broker is back
    while not link.step(time.ticks_ms()):
        time.sleep_ms(5)
    assert link.connects == 1 and backoff.attempt == 0
    client.poll(500)  # the SUBACK
    sender = MQTTClient("fw-re-pub-%d" % random.getrandbits(20), opener())
    sender.connect()
    sender.publish(topic, b"after", qos=1)
    _pump([client, sender], lambda: got)
    assert got == [b"after"]
    # the link drops; the next step reconnects and subscribes again
    link.lost(time.ticks_ms(), OSError(104))
    while not link.step(time.ticks_ms()):
        time.sleep_ms(5)
    client.poll(500)
    sender.publish(topic, b"again", qos=1)
    _pump([client, sender], lambda: len(got) == 2)
    assert got == [b"after", b"again"] and link.connects == 2
    sender.disconnect()
    client.disconnect()


def test_an_oversize_publish_is_read_past_in_pieces_and_acked():
    # 300 KB on a 64 KB heap: read whole, it could not fit. The broker (open, Mosquitto's
    # default limit of 256 MB) delivers it at QoS 1; the client must count it, ack it so it is
    # not sent again, and go on to the next message on the same connection.
    from mqtt import PUBLISH, _length, _str

    topic = _topic("big")
    got = []
    sub = MQTTClient("fw-sub-%d" % random.getrandbits(20), opener())
    sub.on_message = lambda t, payload, retain: got.append(bytes(payload))
    subacks = []
    sub.on_suback = lambda pid, granted: subacks.append(pid)
    sub.connect()
    sub.subscribe(topic, qos=1)
    _pump([sub], lambda: subacks)
    pub = MQTTClient("fw-pub-%d" % random.getrandbits(20), opener())
    acked = []
    pub.on_puback = acked.append
    pub.connect()
    size = 300_000
    head = _str(topic) + b"\x00\x07"  # packet id 7
    pub._sock.write(bytes((PUBLISH | 2,)) + _length(len(head) + size) + head)
    chunk = bytes(1000)
    for _ in range(size // 1000):
        pub._sock.write(chunk)
    pub.publish(topic, b"after", qos=1)
    _pump([pub, sub], lambda: got and len(acked) == 2, timeout_ms=20000)
    assert got == [b"after"]
    assert sub.dropped_oversize == 1
    pub.disconnect()
    sub.disconnect()

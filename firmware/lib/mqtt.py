"""A minimal MQTT 3.1.1 client for the device: QoS 0 and 1, last will, keepalive, socket
timeouts, and ONE write per packet (stock umqtt.simple writes a PUBLISH in five small writes,
which with Nagle and the broker's delayed ACK costs every QoS 1 publish 44 ms).

Mechanism only: it connects once and reports what arrives; reconnecting, backoff and what to
resend are the caller's policy (backoff.py, link.py). The socket comes from a factory passed
in, so the same code runs on the ESP32, in the unix port and under tests.

    c = MQTTClient(client_id, open_socket, keepalive_s=30, timeout_ms=5000)
    c.connect(will=("topic", b"payload", 1, True))   -> session_present (MQTTError if refused)
    c.publish(topic, payload, qos=1, retain=False)   -> packet id (0 for QoS 0)
    c.subscribe(topic, qos=1)                        -> packet id
    c.poll(wait_ms)                                  handle at most one incoming packet
    c.tick(now_ms)                                   keepalive: PINGREQ when due, OSError if dead
    c.disconnect()

Incoming packets go to callbacks: on_message(topic, payload, retain), on_puback(pid),
on_suback(pid, granted). `open_socket()` returns a connected socket-like object with
write/recv/settimeout/close; any socket error is an OSError, after which the client is dead.
"""

import time

CONNECT = 0x10
CONNACK = 0x20
PUBLISH = 0x30
PUBACK = 0x40
SUBSCRIBE = 0x82
SUBACK = 0x90
PINGREQ = 0xC0
PINGRESP = 0xD0
DISCONNECT = 0xE0

_TIMEOUTS = (11, 110)  # EAGAIN, ETIMEDOUT: what a socket timeout raises in MicroPython


class MQTTError(Exception):
    """The broker refused (CONNACK return code in `code`) or broke the protocol (code -1)."""

    def __init__(self, code, detail=""):
        super().__init__("MQTT error %d %s" % (code, detail))
        self.code = code


MAX_PACKET = 4352 + 256 + 8
"""The largest inbound packet kept: an envelope (cose.MAX_ENVELOPE_BYTES), a topic, a packet
id. A broker may hold up to 256 MB messages (Mosquitto's default): one on an ack or command
topic must not reach an ESP32's 110 KB heap."""
_SKIP = 256  # bytes read at a time past an oversize packet


def _length(n):
    # MQTT 3.1.1 section 2.2.3: remaining length, 7 bits a byte
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return out


def _str(s):
    raw = s.encode() if isinstance(s, str) else bytes(s)
    return len(raw).to_bytes(2, "big") + raw


def packet(first, body):
    """A whole packet: fixed header, remaining length, body (section 2.2)."""
    return bytes((first,)) + _length(len(body)) + body


def is_timeout(exc):
    return isinstance(exc, OSError) and exc.args and exc.args[0] in _TIMEOUTS


class MQTTClient:
    def __init__(
        self, client_id, open_socket, keepalive_s=30, timeout_ms=5000, clock=None, max_packet=MAX_PACKET
    ):
        self.client_id = client_id
        self.max_packet = max_packet  # a larger inbound packet is never held in the heap
        self.dropped_oversize = 0  # PUBLISH packets over max_packet read past and acked
        self._open_socket = open_socket
        self.keepalive_s = keepalive_s
        self.timeout_ms = timeout_ms
        self._clock = clock or time.ticks_ms
        self._sock = None
        self._pid = 0
        self._last_tx = self._clock()
        self._last_rx = self._last_tx
        self._ping_out = False
        self.on_message = None
        self.on_puback = None
        self.on_suback = None
        self.writes = 0  # packets written: one socket write each

    @property
    def connected(self):
        return self._sock is not None

    def _next_pid(self):
        self._pid = self._pid % 0xFFFF + 1
        return self._pid

    def _write(self, data):
        if self._sock is None:
            raise OSError(107)  # ENOTCONN
        try:
            self._sock.write(data)
        except OSError:
            self._drop()
            raise
        self.writes += 1
        self._last_tx = self._clock()

    def _read_exact(self, n):
        sock = self._sock
        if sock is None:
            raise OSError(107)
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise OSError(104)  # ECONNRESET: the broker closed the connection
            buf += chunk
        return buf

    def _drop(self):
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock = None

    def connect(self, clean_session=True, will=None, username=None, password=None):
        """Open the socket, send CONNECT in one write, wait for CONNACK (timeout_ms)."""
        self._drop()
        self._sock = self._open_socket()
        try:
            self._sock.settimeout(self.timeout_ms / 1000)
            flags = 0x02 if clean_session else 0
            payload = _str(self.client_id)
            if will is not None:
                topic, message, qos, retain = will
                flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
                payload += _str(topic) + _str(message)
            if username is not None:
                flags |= 0x80
                payload += _str(username)
            if password is not None:
                flags |= 0x40
                payload += _str(password)
            body = _str("MQTT") + bytes((4, flags)) + self.keepalive_s.to_bytes(2, "big")
            self._write(packet(CONNECT, body + payload))
            head = self._read_exact(4)
            if head[0] != CONNACK or head[1] != 2:
                raise MQTTError(-1, "expected CONNACK")
            if head[3] != 0:
                raise MQTTError(head[3], "connection refused")
        except Exception:
            self._drop()
            raise
        self._last_rx = self._clock()
        self._ping_out = False
        return bool(head[2] & 1)

    def publish(self, topic, payload, qos=0, retain=False):
        """Send a PUBLISH in one write; its packet id (0 for QoS 0). PUBACK comes via poll."""
        pid = 0
        body = _str(topic)
        if qos:
            pid = self._next_pid()
            body += pid.to_bytes(2, "big")
        self._write(packet(PUBLISH | (qos << 1) | (1 if retain else 0), body + bytes(payload)))
        return pid

    def subscribe(self, topic, qos=1):
        pid = self._next_pid()
        self._write(packet(SUBSCRIBE, pid.to_bytes(2, "big") + _str(topic) + bytes((qos,))))
        return pid

    def disconnect(self):
        """A clean DISCONNECT (the broker drops the will), then close."""
        try:
            self._write(packet(DISCONNECT, b""))
        except OSError:
            pass
        self._drop()

    def close(self):
        """Drop the connection without DISCONNECT: the broker publishes the will."""
        self._drop()

    def tick(self, now_ms=None):
        """Keepalive (section 3.1.2.10): a PINGREQ after keepalive/2 without sending, and the
        connection declared dead after 1.5 keepalives without hearing from the broker."""
        if self._sock is None or not self.keepalive_s:
            return
        now = self._clock() if now_ms is None else now_ms
        if time.ticks_diff(now, self._last_rx) > self.keepalive_s * 1500:
            self._drop()
            raise OSError(110)  # ETIMEDOUT
        if not self._ping_out and time.ticks_diff(now, self._last_tx) >= self.keepalive_s * 500:
            self._write(packet(PINGREQ, b""))
            self._ping_out = True

    def poll(self, wait_ms=0):
        """Handle at most one incoming packet, waiting up to wait_ms for it to start; True
        when one was handled. Socket errors close the client and propagate."""
        if self._sock is None:
            raise OSError(107)
        try:
            self._sock.settimeout(wait_ms / 1000 if wait_ms > 0 else 0.001)
            try:
                first = self._sock.recv(1)
            except OSError as exc:
                if is_timeout(exc):
                    return False
                raise
            if not first:
                raise OSError(104)
            self._sock.settimeout(self.timeout_ms / 1000)
            n = 0
            shift = 0
            while True:
                byte = self._read_exact(1)[0]
                n |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            if n > self.max_packet:
                self._skip(first[0], n)
                return True
            body = self._read_exact(n) if n else b""
        except OSError:
            self._drop()
            raise
        self._last_rx = self._clock()
        self._ping_out = False
        self._dispatch(first[0], body)
        return True

    def _skip(self, first, n):
        """Read past an oversize packet in small pieces: a PUBLISH is counted and acked (else
        the broker would send it again on every reconnect); anything else ends the
        connection."""
        if first & 0xF0 != PUBLISH:
            raise MQTTError(-1, "packet 0x%02x of %d bytes over %d" % (first, n, self.max_packet))
        qos = (first >> 1) & 3
        tlen = int.from_bytes(self._read_exact(2), "big")
        left = n - 2 - tlen - (2 if qos else 0)
        if left < 0:
            raise MQTTError(-1, "malformed PUBLISH")
        while tlen:  # the topic too is the broker's choice: read it in pieces
            tlen -= len(self._read_exact(min(tlen, _SKIP)))
        pid = self._read_exact(2) if qos else b""
        while left:
            left -= len(self._read_exact(min(left, _SKIP)))
        self._last_rx = self._clock()
        self._ping_out = False
        self.dropped_oversize += 1
        if qos == 1:
            self._write(packet(PUBACK, pid))

    def _dispatch(self, first, body):
        kind = first & 0xF0
        if kind == PUBLISH:
            qos = (first >> 1) & 3
            tlen = int.from_bytes(body[:2], "big")
            topic = body[2 : 2 + tlen].decode()
            pos = 2 + tlen
            if qos:
                pid = body[pos : pos + 2]
                pos += 2
            if self.on_message is not None:
                self.on_message(topic, body[pos:], bool(first & 1))
            if qos == 1:
                self._write(packet(PUBACK, pid))
        elif kind == PUBACK:
            if self.on_puback is not None:
                self.on_puback(int.from_bytes(body[:2], "big"))
        elif kind == SUBACK:
            if self.on_suback is not None:
                self.on_suback(int.from_bytes(body[:2], "big"), body[2:])
        elif kind == PINGRESP:
            pass
        else:
            raise MQTTError(-1, "unexpected packet 0x%02x" % first)

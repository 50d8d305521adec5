"""A small bridge stand-in for agent tests: it speaks only the protocol.

It publishes a signed retained bridge state (online, with a signed offline last will), verifies
every device message with the device keys it is given, keeps a replay window per device and
acks the contiguous edge after "storing" (in memory) each data message. It can also send signed
commands. The real bridge (cloud_bridge) does all of this durably; this exists so the agent can
be tested against something that is not itself.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import nacl.signing
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from protocol import cose, envelope, topics
from protocol import messages as m
from protocol.errors import ProtocolError
from protocol.replay import ReplayWindow
from protocol.topics import Channel

BRIDGE_SEED = bytes(range(100, 132))
_BOOTS = itertools.count(int(time.time()) % 2**31)
"""Each stand-in is a new run of the bridge, as a real one bumps its persisted boot counter:
devices order bridge states by (boot, seq), and a retained state left by an earlier stand-in
on a shared broker must be older than the new one's."""


@dataclass
class Received:
    data: dict[str, dict[int, bytes]] = field(default_factory=dict)  # device -> seq -> payload
    raw: dict[str, list[bytes]] = field(default_factory=dict)  # device -> envelopes as received
    births: list[m.Birth] = field(default_factory=list)
    deaths: list[m.Death] = field(default_factory=list)
    enrollments: list[m.Enrollment] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    conflicts: list[tuple[str, int]] = field(default_factory=list)  # same seq, other content
    duplicates: int = 0


class BridgeStandIn:
    def __init__(
        self,
        host: str,
        port: int,
        fleet: str,
        device_keys: dict[str, nacl.signing.VerifyKey],
        key: nacl.signing.SigningKey | None = None,
        login: tuple[str, str] | None = None,
    ) -> None:
        """`login`: (username, password) on a secured broker."""
        self.host, self.port, self.fleet = host, port, fleet
        self.key = key or nacl.signing.SigningKey(BRIDGE_SEED)
        self.device_keys = dict(device_keys)
        self.windows: dict[str, ReplayWindow] = {}
        self.got = Received()
        self.lock = threading.Lock()
        self.seq = 0
        self.boot = next(_BOOTS)
        self.ack_enabled = True
        self.sent: dict[int, bytes] = {}  # command seq -> the envelope published
        self.online = True  # what the retained bridge state says
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id="bridge-standin",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        if login is not None:
            self.client.username_pw_set(*login)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.will_set(topics.bridge_state(fleet), self._sealed_state(False), 1, True)

    @property
    def public_key_hex(self) -> str:
        return bytes(self.key.verify_key).hex()

    def _next(self) -> dict[str, object]:
        self.seq += 1
        return {
            "sender": "standin",
            "seq": self.seq,
            "boot": self.boot,
            "ts_ms": time.time_ns() // 10**6,
        }

    def _sealed_state(self, online: bool) -> bytes:
        return envelope.seal(m.BridgeState(**self._next(), online=online), self.key)  # type: ignore[arg-type]

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self, online: bool = True) -> BridgeStandIn:
        self.online = online
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect(self.host, self.port, clean_start=False, properties=props)
        self.client.loop_start()
        return self

    def stop(self, clean: bool = True) -> None:
        if clean:
            self.set_online(False)
        self.client.disconnect()
        self.client.loop_stop()

    def set_online(self, online: bool) -> None:
        self.online = online
        info = self.client.publish(
            topics.bridge_state(self.fleet), self._sealed_state(online), 1, retain=True
        )
        info.wait_for_publish(5)

    def send_command(
        self,
        device: str,
        name: str,
        args: dict[str, object] | None = None,
        *,
        expires_ms: int = 0,
        retain: bool = False,
    ) -> int:
        """Sign and publish a command; its seq. Its envelope is kept in `sent` (to replay)."""
        cmd = m.Command(
            **self._next(),  # type: ignore[arg-type]
            device=device,
            command=name,
            args=args or {},  # type: ignore[arg-type]
            expires_ms=expires_ms,
        )
        sealed = envelope.seal(cmd, self.key)
        self.sent[cmd.seq] = sealed
        self.client.publish(
            topics.command(self.fleet, device, name), sealed, 1, retain=retain
        ).wait_for_publish(5)
        return cmd.seq

    def publish_raw(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """Publish bytes as they are (a replayed envelope, say)."""
        self.client.publish(topic, payload, 1, retain=retain).wait_for_publish(5)

    def wait_for(self, predicate: Callable[[Received], bool], timeout_s: float = 30) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if predicate(self.got):
                    return True
            time.sleep(0.05)
        return False

    # ---- receiving -------------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, *_: object) -> None:
        for f in topics.ingest_filters(self.fleet):
            client.subscribe(f, qos=1)
        client.publish(
            topics.bridge_state(self.fleet), self._sealed_state(self.online), 1, retain=True
        )

    def _resolve(self, kid: bytes) -> nacl.signing.VerifyKey | None:
        for key in self.device_keys.values():
            if cose.kid_for(key) == kid:
                return key
        return None

    def _on_message(self, client: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            try:
                topic = topics.parse(msg.topic)
                signed, message = envelope.unseal(msg.payload, self._resolve)
            except ProtocolError as exc:
                self.got.rejected.append(exc.reason.value)
                return
            device = topic.device or ""
            if message.sender != device or self.device_keys.get(device) != signed.key:
                self.got.rejected.append("sender_mismatch")
                return
            if isinstance(message, m.Birth):
                self.got.births.append(message)
                window = self.windows.get(device, ReplayWindow()).settle_below(message.resume_seq)
                self.windows[device] = window
                self._ack(device, window)
            elif isinstance(message, m.Death):
                self.got.deaths.append(message)
            elif isinstance(message, m.Enrollment):
                self.got.enrollments.append(message)
            elif isinstance(message, m.Report | m.Trigger):
                self.got.raw.setdefault(device, []).append(bytes(msg.payload))
                self._data(device, message.seq, signed.payload)

    def _data(self, device: str, seq: int, payload: bytes) -> None:
        store = self.got.data.setdefault(device, {})
        if seq in store:
            self.got.duplicates += 1
            if store[seq] != payload:
                self.got.conflicts.append((device, seq))
        window = self.windows.get(device, ReplayWindow())
        if window.verdict(seq) is None:
            window = window.accept(seq)
            store[seq] = payload  # "commit", then ack
        self.windows[device] = window
        self._ack(device, window)

    def _ack(self, device: str, window: ReplayWindow) -> None:
        if not self.ack_enabled:
            return
        ack = m.Ack(**self._next(), device=device, ack_seq=window.contiguous)  # type: ignore[arg-type]
        self.client.publish(
            topics.device(self.fleet, device, Channel.ACK), envelope.seal(ack, self.key), 1
        )

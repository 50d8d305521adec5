"""The MQTT link: one thread that owns the paho client.

It connects with backoff (agent.backoff), announces every session with a signed birth and a
signed last will (death), and drains the outbox while the bridge says it is online. At most
`inflight_max` publishes wait for a PUBACK and at most 64 data messages are beyond the last
bridge ack (the bridge's replay window; docs/protocol.md section 5). Unacked messages are sent
again, byte for byte, after a reconnect or when acks stop coming.

Inbound: acks (applied to the outbox), the bridge state (gates the drain) and commands (queued
for the agent's main thread). Anything not signed by the configured bridge key is dropped and
counted.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nacl.signing
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.backoff import Backoff
from agent.config import AgentConfig
from agent.outbox import Entry, Outbox
from protocol import cose, envelope, topics
from protocol import messages as m
from protocol.errors import ProtocolError
from protocol.replay import WINDOW, ReplayWindow
from protocol.topics import Channel

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 86_400
CONNACK_TIMEOUT_S = 10.0
ACK_FLUSH_S = 0.1


class Signer:
    """The device key, swappable at run time (key rotation): key and kid change together, as
    one tuple assignment, so a reader in another thread never pairs one with the other."""

    def __init__(self, key: nacl.signing.SigningKey) -> None:
        self.key = key

    @property
    def key(self) -> nacl.signing.SigningKey:
        return self._pair[0]

    @key.setter
    def key(self, key: nacl.signing.SigningKey) -> None:
        self._pair = (key, cose.kid_for(key.verify_key))

    def seal(self, message: m.Message) -> bytes:
        key, kid = self._pair
        return cose.sign1(m.encode(message), key, kid)

    def sign(self, payload: bytes) -> bytes:
        """The envelope of an already encoded payload."""
        key, kid = self._pair
        return cose.sign1(payload, key, kid)


@dataclass
class LinkStatus:
    """What `edge-agent status` shows about the link (a snapshot, written by the link thread)."""

    connected: bool = False
    bridge_online: bool = False
    session: int = 0
    acked: int = 0
    sent_hi: int = 0
    inflight: int = 0
    published: int = 0
    retransmitted: int = 0
    reconnects: int = 0
    dropped_inbound: int = 0
    last_error: str = ""
    connected_at: float = 0.0
    first_publish_at: float = 0.0


class Link(threading.Thread):
    """Run with start(); stop with shutdown() (publishes a clean death first)."""

    def __init__(
        self,
        cfg: AgentConfig,
        outbox: Outbox,
        signer: Signer,
        birth: Callable[[int], m.Birth],
        commands: queue.Queue[m.Command],
        on_connect: Callable[[], None] | None = None,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        super().__init__(name="link", daemon=True)
        self.cfg = cfg
        self.outbox = outbox
        self.signer = signer
        self.birth = birth
        self.commands = commands
        self.on_connect = on_connect
        self.backoff = backoff or Backoff(
            cfg.mqtt.backoff_base_s, cfg.mqtt.backoff_cap_s, cfg.mqtt.refused_cap_s
        )
        self.clock = clock
        self.wall_ms = wall_ms
        self.status = LinkStatus()
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._bridge_kid = cose.kid_for(cfg.bridge_public_key)
        self._bridge_key = nacl.signing.VerifyKey(cfg.bridge_public_key)
        self._inflight: set[int] = set()
        self._inflight_lock = threading.Lock()
        self._session: int | None = None
        self._sent_ever = 0  # highest number ever published (to count retransmissions)
        self._ahead: list[Entry] = []  # numbered, not yet published in this session
        self._forget = threading.Event()
        self._bridge_boots: dict[str, int] = {}  # newest boot seen per bridge instance
        self._acked = 0
        self._acked_stored = 0
        self._assigned_hi = 0
        self._last_progress = 0.0
        self._last_flush = 0.0
        self._next_attempt = 0.0
        self._cmd_windows = self._load_cmd_windows()
        self._client = self._make_client()

    # ---- lifecycle ----------------------------------------------------------------------------

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Publish a clean death, disconnect (the broker then discards the will) and stop."""
        self._stop.set()
        self._stopped.wait(timeout_s)

    def run(self) -> None:
        try:
            while not self._stop.is_set():
                if not self.status.connected:
                    self._try_connect()
                    continue
                self._client.loop(timeout=0.02)
                if self.status.connected:
                    self._drain()
                    self._flush_acks()
                    self._check_ack_timeout()
            self._say_goodbye()
        except Exception:  # the link must never die silently; the agent exits non-zero
            log.exception("link thread crashed")
            raise
        finally:
            self._stopped.set()

    # ---- connecting ---------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        mq = self.cfg.mqtt
        v5 = mq.protocol == "5"
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=mq.client_id,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            clean_session=None if v5 else False,
            reconnect_on_failure=False,
        )
        client.max_inflight_messages_set(mq.inflight_max)
        client.max_queued_messages_set(0)
        if mq.username:
            password = mq.password_file.read_text().strip() if mq.password_file else None
            client.username_pw_set(mq.username, password)
        if mq.tls:
            client.tls_set(
                ca_certs=str(mq.ca_file) if mq.ca_file else None,
                certfile=str(mq.cert_file) if mq.cert_file else None,
                keyfile=str(mq.key_file) if mq.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        return client

    def _try_connect(self) -> None:
        now = self.clock()
        if now < self._next_attempt:
            self._stop.wait(min(0.05, self._next_attempt - now))
            return
        mq = self.cfg.mqtt
        # A session number is spent only by a connection the broker accepted: failed attempts
        # reuse it (a refused connection never saw the will), so an outage costs no writes.
        if self._session is None:
            self._session = self.outbox.next_session()
        session = self._session
        self.status.session = session
        will = self.signer.seal(self._death(session, "lost"))
        self._client.will_set(
            topics.device(self.cfg.fleet, self.cfg.device_id, Channel.DEATH), will, qos=1
        )
        props = None
        kwargs: dict[str, Any] = {}
        if mq.protocol == "5":
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = SESSION_EXPIRY_S
            kwargs = {"clean_start": False, "properties": props}
        self._connack: bool | None = None
        try:
            self._client.connect(mq.host, mq.port, keepalive=mq.keepalive_s, **kwargs)
        except ConnectionRefusedError as exc:
            self._failed(f"refused: {exc}", refused=True)
            return
        except (TimeoutError, OSError, ssl.SSLError) as exc:
            self._failed(f"{type(exc).__name__}: {exc}", refused=False)
            return
        deadline = self.clock() + CONNACK_TIMEOUT_S
        while self._connack is None and self.clock() < deadline and not self._stop.is_set():
            self._client.loop(timeout=0.05)
        if not self._connack:
            with contextlib.suppress(Exception):
                self._client.disconnect()
            self._failed("no CONNACK" if self._connack is None else "broker refused", False)

    def _failed(self, why: str, refused: bool) -> None:
        delay = self.backoff.next_delay(refused=refused)
        self._next_attempt = self.clock() + delay
        self.status.last_error = why
        log.info("link: connect failed (%s); next attempt in %.2f s", why, delay)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._connack = False
            self.status.last_error = f"CONNACK {reason}"
            return
        self._connack = True
        self._session = None  # the next connection gets a new session number
        self.backoff.reset()
        sock = client.socket()
        if isinstance(sock, socket.socket):  # no Nagle: small QoS 1 packets go out at once
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        st = self.status
        st.connected = True
        st.bridge_online = False  # until the (retained) bridge state arrives again
        st.reconnects += 1
        st.connected_at = self.clock()
        st.first_publish_at = 0.0
        with self._inflight_lock:
            self._inflight.clear()
        # Everything below resume_seq is acked or abandoned: the flow window starts there.
        stats = self.outbox.stats()
        self._assigned_hi = stats.next_seq - 1
        self._acked = max(self._acked, self.outbox.resume_seq() - 1, stats.last_ack)
        st.acked = self._acked
        st.sent_hi = self._acked  # resend every unacked message on this session
        self._ahead = []
        self._last_progress = self.clock()
        for topic_filter in topics.device_inbox_filters(self.cfg.fleet, self.cfg.device_id):
            client.subscribe(topic_filter, qos=1)
        birth = self.signer.seal(self.birth(st.session))
        client.publish(topics.device(self.cfg.fleet, self.cfg.device_id, Channel.BIRTH), birth, 1)
        if self.on_connect is not None:
            self.on_connect()
        log.info("link: connected (session %d), resuming after seq %d", st.session, self._acked)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if self.status.connected:
            log.info("link: disconnected (%s)", reason)
        self.status.connected = False
        self.status.bridge_online = False
        self.status.last_error = f"disconnected: {reason}"
        self._next_attempt = self.clock() + self.backoff.next_delay(refused=False)

    # ---- sending ------------------------------------------------------------------------------

    def publish_signed(self, channel: Channel, data: bytes) -> None:
        """Publish a signed message outside the outbox (enrollment on rotation)."""
        if self.status.connected:
            self._client.publish(
                topics.device(self.cfg.fleet, self.cfg.device_id, channel), data, 1
            )

    def _drain(self) -> None:
        """Publish what the windows allow: numbered messages not yet sent in this session
        first (retransmissions, or numbered ahead), then number a whole flow window at once
        (one durable commit per window, not per message)."""
        st = self.status
        if self._forget.is_set():
            self._forget.clear()
            self._ahead = []
        if not st.bridge_online:
            return
        limit_hi = self._acked + WINDOW
        while st.connected:
            with self._inflight_lock:
                budget = self.cfg.mqtt.inflight_max - len(self._inflight)
            budget = min(budget, limit_hi - st.sent_hi)
            if budget <= 0:
                return
            if self._ahead and self._ahead[0].seq == st.sent_hi + 1:
                entries, self._ahead = self._ahead[:budget], self._ahead[budget:]
            else:
                entries = self.outbox.sent_after(st.sent_hi, budget)
            if not entries:
                numbered = self.outbox.assign(limit_hi - self._assigned_hi, self.signer.sign)
                if not numbered:
                    return
                self._assigned_hi = max(self._assigned_hi, numbered[-1].seq or 0)
                self._ahead = numbered  # just numbered: publish them without reading back
                continue
            if entries[0].seq is not None and entries[0].seq <= self._sent_ever:
                st.retransmitted += sum(1 for e in entries if (e.seq or 0) <= self._sent_ever)
            for entry in entries:
                self._publish_entry(entry)
            st.sent_hi = max(st.sent_hi, entries[-1].seq or 0)
            self._sent_ever = max(self._sent_ever, st.sent_hi)

    def forget_numbered(self) -> None:
        """The outbox's envelopes changed (re-signed after a rotation): read them again. Called
        from the main thread; the link thread drops its copies at its next drain."""
        self._forget.set()

    def _publish_entry(self, entry: Entry) -> None:
        channel = Channel.TRIGGER if entry.kind == m.Kind.TRIGGER else Channel.REPORT
        topic = topics.device(self.cfg.fleet, self.cfg.device_id, channel)
        assert entry.envelope is not None
        info = self._client.publish(topic, entry.envelope, qos=1)
        with self._inflight_lock:
            self._inflight.add(info.mid)
        self.status.published += 1
        if not self.status.first_publish_at:
            self.status.first_publish_at = self.clock()

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, _r: Any, _p: Any) -> None:
        with self._inflight_lock:
            self._inflight.discard(mid)
            self.status.inflight = len(self._inflight)

    def _check_ack_timeout(self) -> None:
        st = self.status
        if st.sent_hi > self._acked and self.clock() - self._last_progress > (
            self.cfg.mqtt.ack_timeout_s
        ):
            log.info(
                "link: no ack for %.1f s; resending after %d",
                self.cfg.mqtt.ack_timeout_s,
                self._acked,
            )
            st.sent_hi = self._acked
            self._ahead = []
            self._last_progress = self.clock()

    def _flush_acks(self, force: bool = False) -> None:
        """Apply the highest ack to the outbox, at most every ACK_FLUSH_S: acks are cumulative,
        so one delete covers many, and a crash in between only means harmless resends."""
        now = self.clock()
        if self._acked > self._acked_stored and (force or now - self._last_flush >= ACK_FLUSH_S):
            self.outbox.ack(self._acked)
            self._acked_stored = self._acked
            self._last_flush = now

    def _say_goodbye(self) -> None:
        self._flush_acks(force=True)
        if not self.status.connected:
            return
        death = self.signer.seal(self._death(self.status.session, "shutdown"))
        topic = topics.device(self.cfg.fleet, self.cfg.device_id, Channel.DEATH)
        info = self._client.publish(topic, death, qos=1)
        deadline = self.clock() + 2.0
        while not info.is_published() and self.clock() < deadline:
            self._client.loop(timeout=0.05)
        self._client.disconnect()
        self._client.loop(timeout=0.1)
        self.status.connected = False

    def _death(self, session: int, reason: str) -> m.Death:
        return m.Death(
            sender=self.cfg.device_id,
            seq=2 * session + 1,
            boot=self.outbox.boot,
            ts_ms=self.wall_ms(),
            reason=reason,
        )

    # ---- receiving ----------------------------------------------------------------------------

    def _resolve(self, kid: bytes) -> nacl.signing.VerifyKey | None:
        return self._bridge_key if kid == self._bridge_kid else None

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            topic = topics.parse(msg.topic)
            _signed, message = envelope.unseal(bytes(msg.payload), self._resolve)
        except ProtocolError as exc:
            self.status.dropped_inbound += 1
            log.warning("link: dropped message on %s: %s", msg.topic, exc)
            return
        if topic.channel is Channel.BRIDGE_STATE and isinstance(message, m.BridgeState):
            # A state from an earlier run of that bridge (a replayed old last will) is stale.
            if message.boot < self._bridge_boots.get(message.sender, 0):
                self.status.dropped_inbound += 1
                return
            self._bridge_boots[message.sender] = message.boot
            if message.online != self.status.bridge_online:
                log.info(
                    "link: bridge %s is %s",
                    message.sender,
                    "online" if message.online else "offline",
                )
            self.status.bridge_online = message.online
        elif topic.channel is Channel.ACK and isinstance(message, m.Ack):
            self._on_ack(message)
        elif topic.channel is Channel.CMD and isinstance(message, m.Command):
            self._on_command(message, topic.command or "")
        else:
            self.status.dropped_inbound += 1
            log.warning("link: %s on %s does not belong there", type(message).__name__, msg.topic)

    def _on_ack(self, ack: m.Ack) -> None:
        if ack.device != self.cfg.device_id:
            self.status.dropped_inbound += 1
            return
        # Never believe an ack beyond what this device has numbered.
        ack_seq = min(ack.ack_seq, self._assigned_hi)
        if ack_seq > self._acked:
            self._acked = ack_seq
            self.status.acked = ack_seq
            self._last_progress = self.clock()

    def _on_command(self, cmd: m.Command, topic_name: str) -> None:
        if cmd.device != self.cfg.device_id or cmd.command != topic_name:
            self.status.dropped_inbound += 1
            log.warning(
                "link: command %s for %s refused (wrong device or topic)", cmd.command, cmd.device
            )
            return
        window = self._cmd_windows.get(cmd.sender, ReplayWindow())
        if window.verdict(cmd.seq) is not None:
            self.status.dropped_inbound += 1
            log.warning("link: replayed command %s seq %d refused", cmd.command, cmd.seq)
            return
        self._cmd_windows[cmd.sender] = window.accept(cmd.seq)
        self.outbox.put_json(
            "cmd_windows", {k: w.to_bytes().hex() for k, w in self._cmd_windows.items()}
        )
        self.commands.put(cmd)

    def _load_cmd_windows(self) -> dict[str, ReplayWindow]:
        raw = self.outbox.get_json("cmd_windows", {})
        out: dict[str, ReplayWindow] = {}
        if isinstance(raw, dict):
            for sender, hexed in raw.items():
                with contextlib.suppress(ValueError, TypeError):
                    out[str(sender)] = ReplayWindow.from_bytes(bytes.fromhex(hexed))
        return out

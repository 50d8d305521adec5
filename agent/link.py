"""The MQTT link: one thread that owns the paho client, a thin adapter around agent.window.

It connects with backoff (agent.backoff), announces every session with a signed birth and a
signed last will (death), and lets the send window (agent.window.SendWindow) decide the rest:
which numbered messages to publish, how many to number, which ack to persist. The window holds
every flow-control rule (the 64-message window beyond the last bridge ack, the PUBACK limit,
bridge-state gating, resends after a reconnect or an ack timeout); agent.sender carries its
answers out against the outbox; this module only translates paho events into window events and
publishes what the sender hands it.

Inbound: acks, the bridge state and commands (queued for the agent's main thread). Anything
not signed by the configured bridge key is dropped and counted; a payload over the envelope
limit is dropped before it is copied or decoded (an MQTT 5 broker does not even send one over
mqttc.MAX_PACKET_BYTES). The warnings about drops are throttled per reason (mqttc.throttle),
since whoever can publish decides how many there are.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nacl.signing
import paho.mqtt.client as mqtt

import mqttc
from agent import command_gate, timebase
from agent.backoff import Backoff
from agent.clock import Clock
from agent.config import AgentConfig
from agent.outbox import Entry, Outbox
from agent.sender import Sender
from agent.window import SendWindow
from mqttc.throttle import Throttle
from protocol import cose, envelope, topics
from protocol import messages as m
from protocol.errors import ProtocolError
from protocol.replay import WINDOW, ReplayWindow
from protocol.topics import Channel

log = logging.getLogger(__name__)

DATA_CHANNEL: dict[int, Channel] = {
    m.Kind.TRIGGER: Channel.TRIGGER,
    m.Kind.APPLICATION: Channel.APPLICATION,
}
"""The topic channel of an outbox entry's kind, besides reports."""
CONNACK_TIMEOUT_MS = 10_000


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


@dataclass(frozen=True)
class LinkStatus:
    """What `edge-agent status` shows about the link (a snapshot)."""

    connected: bool
    bridge_online: bool
    drain: str  # agent.window mode: disconnected, gated, online or on_acks
    session: int
    acked: int
    sent_hi: int
    inflight: int
    published: int
    retransmitted: int
    reconnects: int
    dropped_inbound: int
    last_error: str


def client_settings(cfg: AgentConfig) -> mqttc.Settings:
    mq = cfg.mqtt
    return mqttc.Settings(
        client_id=mq.client_id,
        protocol=mq.protocol,
        username=mq.username,
        password_file=mq.password_file,
        tls=mq.tls,
        ca_file=mq.ca_file,
        cert_file=mq.cert_file,
        key_file=mq.key_file,
    )


class Link(threading.Thread):
    """Run with start(); stop with shutdown() (publishes a clean death first).

    Only the device's identity and its [mqtt] section are read from `cfg`, at construction:
    none of them can change while the agent runs (remote config changes other sections)."""

    def __init__(
        self,
        cfg: AgentConfig,
        outbox: Outbox,
        signer: Signer,
        birth: Callable[[int], m.Birth],
        commands: queue.Queue[m.Command],
        clock: Clock,
        on_connect: Callable[[], None] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(name="link", daemon=True)
        mq = cfg.mqtt
        self.mqtt = mq
        self.device_id = cfg.device_id
        self.outbox = outbox
        self.signer = signer
        self.birth = birth
        self.commands = commands
        self.on_connect = on_connect
        self.backoff = backoff or Backoff(mq.backoff_base_s, mq.backoff_cap_s, mq.refused_cap_s)
        self.clock = clock
        self.window = SendWindow(
            WINDOW,
            mq.inflight_max,
            int(mq.ack_timeout_s * 1000),
            state_timeout_ms=int(mq.bridge_state_timeout_s * 1000),
        )
        self.sender = Sender(self.window, outbox, signer.sign)
        self._settings = client_settings(cfg)
        self._topics = {
            ch: topics.device(cfg.fleet, cfg.device_id, ch)
            for ch in (*DATA_CHANNEL.values(), Channel.BIRTH, Channel.DEATH, Channel.REPORT)
        }
        self._inbox_filters = topics.device_inbox_filters(cfg.fleet, cfg.device_id)
        self._fleet = cfg.fleet
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._bridge_kid = cose.kid_for(cfg.bridge_public_key)
        self._bridge_key = nacl.signing.VerifyKey(cfg.bridge_public_key)
        self._session: int | None = None  # reserved for the next connection
        self._forget = threading.Event()
        self._next_attempt_ms = 0
        self._connack: bool | None = None
        # What status shows beside the window's counters.
        self._connected = False
        self._shown_session = 0
        self._reconnects = 0
        self._dropped_inbound = 0
        self._drop_warnings = Throttle()
        self._last_error = ""
        self.beat_ms = clock.mono_ms()  # the loop went round (agent.watchdog reads it)
        self._cmd_windows = self._load_cmd_windows()
        self.on_bridge_time: Callable[[int], None] | None = None
        self._boot_first_seq = outbox.stats().next_seq  # the first seq numbered in this boot
        self._client = self._make_client()

    @property
    def status(self) -> LinkStatus:
        w = self.window
        return LinkStatus(
            connected=self._connected,
            bridge_online=w.bridge_online,
            drain=w.mode,
            session=self._shown_session,
            acked=w.acked,
            sent_hi=w.sent_hi,
            inflight=len(w.inflight),
            published=w.published,
            retransmitted=w.retransmitted,
            reconnects=self._reconnects,
            dropped_inbound=self._dropped_inbound,
            last_error=self._last_error,
        )

    # ---- lifecycle ----------------------------------------------------------------------------

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Publish a clean death, disconnect (the broker then discards the will) and stop."""
        self._stop.set()
        self._stopped.wait(timeout_s)

    def run(self) -> None:
        try:
            while not self._stop.is_set():
                self.beat_ms = self.clock.mono_ms()
                if not self._connected:
                    self._try_connect()
                    continue
                self._client.loop(timeout=0.02)
                if self._connected:
                    self._drain()
                    self._tick()
            self._say_goodbye()
        except Exception:  # the link must never die silently; the agent exits non-zero
            log.exception("link thread crashed")
            raise
        finally:
            self._stopped.set()

    # ---- connecting ---------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        client = mqttc.make_client(
            self._settings, inflight_max=self.mqtt.inflight_max, auto_reconnect=False
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        return client

    def _try_connect(self) -> None:
        now = self.clock.mono_ms()
        if now < self._next_attempt_ms:
            self._stop.wait(min(50, self._next_attempt_ms - now) / 1000)
            return
        mq = self.mqtt
        # A session number is spent only by a connection the broker accepted: failed attempts
        # reuse it (a refused connection never saw the will), so an outage costs no writes.
        if self._session is None:
            self._session = self.outbox.next_session()
        session = self._session
        self._shown_session = session
        will = self.signer.seal(self._death(session, "lost"))
        self._client.will_set(self._topics[Channel.DEATH], will, qos=1)
        self._connack = None
        try:
            self._client.connect(
                mq.host, mq.port, keepalive=mq.keepalive_s, **mqttc.connect_kwargs(self._settings)
            )
        except ConnectionRefusedError as exc:
            self._failed(f"refused: {exc}", refused=True)
            return
        except (TimeoutError, OSError, ssl.SSLError) as exc:
            self._failed(f"{type(exc).__name__}: {exc}", refused=False)
            return
        # A broker that accepts TCP but never answers is given one keepalive at most, so a hung
        # link is found within two (the keepalive's own PINGREQ/PINGRESP covers a hang later on).
        deadline = self.clock.mono_ms() + min(CONNACK_TIMEOUT_MS, mq.keepalive_s * 1000)
        while self._connack is None and self.clock.mono_ms() < deadline:
            if self._stop.is_set():
                break
            self._client.loop(timeout=0.05)
            self.beat_ms = self.clock.mono_ms()
        if not self._connack:
            with contextlib.suppress(Exception):
                self._client.disconnect()
                self._client.loop(timeout=0.05)  # sends the DISCONNECT and closes the socket
            self._failed("no CONNACK" if self._connack is None else "broker refused", False)

    def _failed(self, why: str, refused: bool) -> None:
        delay = self.backoff.next_delay(refused=refused)
        self._next_attempt_ms = self.clock.mono_ms() + int(delay * 1000)
        self._last_error = why
        log.info("link: connect failed (%s); next attempt in %.2f s", why, delay)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._connack = False
            self._last_error = f"CONNACK {reason}"
            return
        self._connack = True
        self._session = None  # the next connection gets a new session number
        self.backoff.reset()
        mqttc.nodelay(client)  # small QoS 1 packets go out at once
        self._connected = True
        self._reconnects += 1
        self.sender.connected(self.clock.mono_ms())
        for topic_filter in self._inbox_filters:
            client.subscribe(topic_filter, qos=1)
        birth = self.signer.seal(self.birth(self._shown_session))
        client.publish(self._topics[Channel.BIRTH], birth, 1)
        if self.on_connect is not None:
            self.on_connect()
        log.info(
            "link: connected (session %d), resuming after seq %d",
            self._shown_session,
            self.window.acked,
        )

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        was_connected, self._connected = self._connected, False
        self.window.on_disconnected()
        if self._stop.is_set():  # our own goodbye (shutdown): nothing was lost, no reconnect
            return
        if was_connected:
            log.info("link: disconnected (%s)", reason)
        self._last_error = f"disconnected: {reason}"
        delay = self.backoff.next_delay(refused=False)
        self._next_attempt_ms = self.clock.mono_ms() + int(delay * 1000)

    # ---- sending ------------------------------------------------------------------------------

    def publish_signed(self, channel: Channel, data: bytes) -> None:
        """Publish a signed message outside the outbox (enrollment on rotation)."""
        if self._connected:
            self._client.publish(topics.device(self._fleet, self.device_id, channel), data, 1)

    def forget_numbered(self) -> None:
        """The outbox's envelopes changed (re-signed after a rotation): read them again. Called
        from the main thread; the link thread drops its copies at its next drain."""
        self._forget.set()

    def _drain(self) -> None:
        if self._forget.is_set():
            self._forget.clear()
            self.sender.forget()
        self.sender.drain(self._publish_entry)

    def _publish_entry(self, entry: Entry) -> int:
        channel = DATA_CHANNEL.get(entry.kind, Channel.REPORT)
        assert entry.envelope is not None
        info = self._client.publish(self._topics[channel], entry.envelope, qos=1)
        return info.mid

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, _r: Any, _p: Any) -> None:
        self.window.on_puback(mid)

    def _tick(self, force_flush: bool = False) -> None:
        was = self.window.on_acks
        if self.sender.tick(self.clock.mono_ms(), force_flush).timed_out:
            log.info(
                "link: no ack for %.1f s; resending after %d",
                self.mqtt.ack_timeout_s,
                self.window.acked,
            )
        if self.window.on_acks and not was:
            log.warning(
                "link: no valid bridge state for %.0f s; draining while the bridge's acks come",
                self.mqtt.bridge_state_timeout_s,
            )

    def _say_goodbye(self) -> None:
        self._tick(force_flush=True)
        if not self._connected:
            return
        death = self.signer.seal(self._death(self._shown_session, "shutdown"))
        info = self._client.publish(self._topics[Channel.DEATH], death, qos=1)
        deadline = self.clock.mono_ms() + 2000
        while not info.is_published() and self.clock.mono_ms() < deadline:
            self._client.loop(timeout=0.05)
        self._client.disconnect()
        self._client.loop(timeout=0.1)
        self._connected = False
        log.info("link: session %d closed (shutdown)", self._shown_session)

    def _death(self, session: int, reason: str) -> m.Death:
        return m.Death(
            sender=self.device_id,
            seq=2 * session + 1,
            boot=self.outbox.boot,
            ts_ms=self.clock.wall_ms(),
            reason=reason,
        )

    # ---- receiving ----------------------------------------------------------------------------

    def _resolve(self, kid: bytes) -> nacl.signing.VerifyKey | None:
        return self._bridge_key if kid == self._bridge_kid else None

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if len(msg.payload) > cose.MAX_ENVELOPE_BYTES:
            self._drop(
                "oversize",
                "link: dropped an oversize message on %.80s: %d bytes, limit %d",
                msg.topic, len(msg.payload), cose.MAX_ENVELOPE_BYTES,
            )  # fmt: skip
            return
        try:
            topic = topics.parse(msg.topic)
            _signed, message = envelope.unseal(bytes(msg.payload), self._resolve)
        except ProtocolError as exc:
            self._drop(exc.reason.value, "link: dropped message on %s: %s", msg.topic, exc)
            return
        if topic.channel is Channel.BRIDGE_STATE and isinstance(message, m.BridgeState):
            self._on_bridge_state(message)
        elif topic.channel is Channel.ACK and isinstance(message, m.Ack):
            if message.device != self.device_id:
                self._dropped_inbound += 1
                return
            self.window.on_ack(message.ack_seq, self.clock.mono_ms())
            # the bridge's clock, signed, from an ack of this boot's messages (agent.timebase)
            if self.on_bridge_time is not None and timebase.answers_this_boot(
                message.ack_seq, self._boot_first_seq
            ):
                self.on_bridge_time(message.ts_ms)
        elif topic.channel is Channel.CMD and isinstance(message, m.Command):
            self._on_command(message, topic.command or "", bool(msg.retain))
        else:
            self._drop(
                "misplaced",
                "link: %s on %s does not belong there",
                type(message).__name__,
                msg.topic,
            )

    def count_drop(self, reason: str, cmd: m.Command) -> None:
        """A command the agent refused to apply (expired): counted and logged like a drop."""
        self._drop(reason, "link: command %s seq %d not applied: %s", cmd.command, cmd.seq, reason)

    def _drop(self, reason: str, warning: str, *args: object) -> None:
        """Count a dropped inbound message and warn about it, throttled per reason."""
        self._dropped_inbound += 1
        self._drop_warnings.warn(log, reason, self.clock.mono_ms(), warning, *args)

    def _on_bridge_state(self, state: m.BridgeState) -> None:
        was = self.window.bridge_online
        w = self.window
        if not w.on_bridge_state(
            state.sender, state.boot, state.seq, state.online, self.clock.mono_ms()
        ):
            # older than one already taken from that bridge: a replayed will or offline
            self._drop(
                "bridge_state_stale",
                "link: bridge state %s boot %d seq %d ignored (older than one taken)",
                state.sender, state.boot, state.seq,
            )  # fmt: skip
            return
        if state.online != was:
            log.info("link: bridge %s is %s", state.sender, "online" if state.online else "offline")

    def _on_command(self, cmd: m.Command, topic_name: str, retained: bool = False) -> None:
        if cmd.device != self.device_id or cmd.command != topic_name:
            self._drop(
                "command_misaddressed",
                "link: command %s for %s refused (wrong device or topic)",
                cmd.command,
                cmd.device,
            )
            return
        if retained:  # applied once, when sent: never again from what the broker keeps
            self._drop(
                command_gate.RETAINED,
                "link: retained command %s seq %d ignored",
                cmd.command,
                cmd.seq,
            )
            return
        window = self._cmd_windows.get(cmd.sender, ReplayWindow())
        if window.verdict(cmd.seq) is not None:
            self._drop(
                "command_replay", "link: replayed command %s seq %d refused", cmd.command, cmd.seq
            )
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

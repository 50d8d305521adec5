"""MQTT client set-up, defined once for the agent's link and the bridge.

paho's callback API version, the protocol (5 or 3.1.1) with a persistent session, credentials,
TLS, Nagle off and the MQTT 5 session expiry. Each caller builds `Settings` from its own
configuration; this package knows no configuration file. (protocol/ stays free of paho: this
is the one place that sets paho up.)
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

SESSION_EXPIRY_S = 86_400
"""MQTT 5: the broker keeps a session (subscriptions, queued QoS 1 messages) a day."""
PROTOCOLS = ("5", "3.1.1")
MAX_PACKET_BYTES = 64 * 1024
"""MQTT 5: the largest packet the agent and the bridge accept (CONNECT Maximum Packet Size).
The broker drops a larger message for this client instead of sending it (MQTT 5 section
3.1.2.11.4), so a flood of huge messages never reaches the client's memory. Far above the
largest envelope (protocol.cose.MAX_ENVELOPE_BYTES) plus a topic and properties; the clients
refuse anything between that envelope limit and this one themselves, counted."""


@dataclass(frozen=True)
class Settings:
    """What a client needs to reach the broker. `protocol` is "5" or "3.1.1"."""

    client_id: str
    protocol: str = "5"
    username: str = ""
    password_file: Path | None = None
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    max_packet_bytes: int = MAX_PACKET_BYTES  # MQTT 5 only; 0: no limit

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, not {self.protocol!r}")

    @property
    def v5(self) -> bool:
        return self.protocol == "5"


def make_client(settings: Settings, inflight_max: int, auto_reconnect: bool) -> mqtt.Client:
    """A paho client with a persistent session (clean_start / clean_session off).

    `inflight_max` bounds the publishes paho keeps waiting for a PUBACK; 0 means no client-side
    limit (paho then rescans no queue on every PUBACK; the broker's receive maximum bounds what
    is in flight). `auto_reconnect`: paho reconnects by itself (1 to 5 s apart); without it the
    caller connects and backs off on its own."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=settings.client_id,
        protocol=MQTTProtocolVersion.MQTTv5 if settings.v5 else MQTTProtocolVersion.MQTTv311,
        clean_session=None if settings.v5 else False,
        reconnect_on_failure=auto_reconnect,
    )
    client.max_inflight_messages_set(inflight_max)
    client.max_queued_messages_set(0)
    if auto_reconnect:
        client.reconnect_delay_set(1, 5)
    if settings.username:
        pw_file = settings.password_file
        password = pw_file.read_text().strip() if pw_file else None
        client.username_pw_set(settings.username, password)
    if settings.tls:
        client.tls_set(
            ca_certs=str(settings.ca_file) if settings.ca_file else None,
            certfile=str(settings.cert_file) if settings.cert_file else None,
            keyfile=str(settings.key_file) if settings.key_file else None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
    return client


def connect_kwargs(settings: Settings) -> dict[str, Any]:
    """Extra arguments of `connect` / `connect_async`: MQTT 5 keeps the session (clean_start
    off, a session expiry) and caps the packets the broker may send (`max_packet_bytes`);
    3.1.1 has the session from clean_session=False already, and no such cap."""
    if not settings.v5:
        return {}
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = SESSION_EXPIRY_S
    if settings.max_packet_bytes:
        props.MaximumPacketSize = settings.max_packet_bytes
    return {"clean_start": False, "properties": props}


def nodelay(client: mqtt.Client) -> None:
    """Turn Nagle off on the client's socket (call it on every connect): with delayed ACKs it
    held small QoS 1 packets back by 40 ms (the p99 of trigger->decision went from 56 ms to
    19 ms without it)."""
    sock = client.socket()
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

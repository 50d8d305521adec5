"""Enrollment by claim, the device side (issue 18 item 7): one claim, its answer.

A device with a claim token (protocol.claims) and no enrollment yet makes its key, logs in to
the broker with the token's claim account, publishes its self-signed enrollment carrying the
token on its claim topic and waits for the bridge's signed answer: its broker credentials,
sealed to its key, or a refusal with a reason code. Safe to retry with the same key: the bridge
answers a repeat with the same answer. Light enough for a factory line to run many at once
(tools/fleet/claim_line.py does).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import nacl.signing
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from agent.errors import AgentError
from protocol import claims as pc
from protocol import cose, envelope, topics
from protocol import messages as m
from protocol.errors import ProtocolError
from protocol.topics import Channel


@dataclass(frozen=True)
class ClaimResult:
    """`result`: enrolled or refused; `reason`: the refusal code; `credentials` when enrolled."""

    result: str
    reason: str = ""
    credentials: pc.Credentials | None = None
    answer: bytes = b""  # the signed answer as received


def token_of(claim: bytes, bridge_key: nacl.signing.VerifyKey) -> pc.ClaimToken:
    """The token, if the bridge key signed it (a device checks before using it)."""
    try:
        return pc.open_token(claim, bridge_key)
    except ProtocolError as exc:
        raise AgentError(f"not a claim token of this bridge: {exc}") from exc


def enrollment(
    key: nacl.signing.SigningKey, device_id: str, kind: str, token: pc.ClaimToken, claim: bytes,
    ts_ms: int, baseline: dict[int, int] | None = None,
) -> bytes:  # fmt: skip
    """The self-signed enrollment record (key generation 1) carrying the claim."""
    record = m.Enrollment(
        sender=device_id,
        seq=1,
        boot=0,
        ts_ms=ts_ms,
        fleet=token.fleet,
        device_kind=kind,
        public_key=bytes(key.verify_key),
        baseline=baseline or {},
        claim=claim,
    )
    return envelope.seal(record, key)


def claim_once(
    host: str,
    port: int,
    claim: bytes,
    key: nacl.signing.SigningKey,
    device_id: str,
    kind: str,
    bridge_key: nacl.signing.VerifyKey,
    timeout_s: float = 30.0,
) -> ClaimResult:
    """Publish the claim and wait for the answer; AgentError if none comes in `timeout_s` or the
    broker refuses the claim account (expired or revoked batch)."""
    token = token_of(claim, bridge_key)
    account = pc.claim_account(token.token)
    data = enrollment(key, device_id, kind, token, claim, time.time_ns() // 1_000_000)
    answer_topic = topics.claim(token.fleet, account, Channel.CLAIM_ANSWER)
    got: list[bytes] = []
    ready, done = threading.Event(), threading.Event()
    refused: list[str] = []
    # A short-lived clean session (not mqttc's persistent one: nothing may outlive the claim),
    # MQTT 5 like the agent's link.
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=account, protocol=MQTTProtocolVersion.MQTTv5
    )
    client.username_pw_set(account, pc.claim_password(claim))

    def on_connect(c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if getattr(reason, "is_failure", False):
            refused.append(str(reason))
            done.set()
            return
        c.subscribe(answer_topic, qos=1)

    def on_subscribe(*_: object) -> None:
        ready.set()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        got.append(bytes(msg.payload))
        done.set()

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    try:
        client.connect(host, port)
    except OSError as exc:
        raise AgentError(f"cannot reach the broker at {host}:{port}: {exc}") from exc
    client.loop_start()
    try:
        if ready.wait(timeout_s):
            client.publish(topics.claim(token.fleet, account), data, qos=1)
        done.wait(timeout_s)
    finally:
        client.disconnect()
        client.loop_stop()
    if refused:
        raise AgentError(f"the broker refused claim account {account}: {refused[0]}")
    if not got:
        raise AgentError(f"no answer to the claim of {device_id} in {timeout_s:.0f} s")
    kid = cose.kid_for(bridge_key)
    try:
        _s, msg = envelope.unseal(got[0], lambda k: bridge_key if k == kid else None)
    except ProtocolError as exc:
        raise AgentError(f"the answer is not signed by the bridge: {exc}") from exc
    if not isinstance(msg, m.ClaimAnswer) or msg.device != device_id:
        raise AgentError("the answer is not for this device")
    if msg.result != "enrolled":
        return ClaimResult(msg.result, msg.reason, None, got[0])
    try:
        creds = pc.open_credentials(msg.sealed, key)
    except ProtocolError as exc:
        raise AgentError(f"credentials not readable: {exc}") from exc
    return ClaimResult("enrolled", "", creds, got[0])

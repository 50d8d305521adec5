"""python -m tools.tap: watch a broker and print every protocol message, verified and decoded.

For the cloud team and the bench operator. Device messages are verified with the device keys of
a bridge's registry (--data DIR or --store URL), bridge messages with the bridge key (from the
same data directory, or --bridge-key HEX). Without keys a message is still decoded and shown
as unverified. --json prints one JSON object per line for scripts.

    python -m tools.tap --url mqtt://127.0.0.1:1883 --data var/bridge
    python -m tools.tap --url mqtt://127.0.0.1:1883 --bridge-key 3b6a... --json --count 10

JSON lines (--json), one per message, flushed as it arrives:

    topic, bytes, channel       the MQTT topic, the envelope's size, the topic's channel
    verified, kid, signer       the signature verified with that key (else verified false and
                                error: the reason code of docs/protocol.md section 6)
    kind                        the message class (Birth, Report, ... PoolState)
    payload                     the decoded CBOR map in the JSON form of docs/asyncapi.yaml:
                                integer keys as decimal text, byte strings as lowercase hex,
                                integers exact (tools/contract/jsonview.py)
    fields                      the same message by field name, optional fields filled in

--verified-only leaves out what did not verify (a count goes to stderr at the end).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import nacl.signing
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from protocol import cbor, cose, messages, topics
from protocol.errors import ProtocolError
from tools.contract.jsonview import to_json


class Keys:
    """kid -> key, from a registry database and the bridge key."""

    def __init__(self, bridge_key: bytes | None, store_url: str | None) -> None:
        self.keys: dict[bytes, tuple[str, nacl.signing.VerifyKey]] = {}
        self.store_url = store_url
        if bridge_key:
            vk = nacl.signing.VerifyKey(bridge_key)
            self.keys[cose.kid_for(vk)] = ("bridge", vk)
        self.reload()

    def reload(self) -> None:
        if not self.store_url:
            return
        from cloud_bridge.store import open_store, registry_repo

        with open_store(self.store_url) as store, store.transaction() as tx:
            for key in registry_repo.all_keys(tx):
                self.keys[key.kid] = (f"{key.device_id} ({key.status})", key.verify_key)

    def resolve(self, kid: bytes) -> nacl.signing.VerifyKey | None:
        if kid not in self.keys:
            self.reload()  # a device enrolled since we started
        entry = self.keys.get(kid)
        return entry[1] if entry else None


def describe(topic: str, payload: bytes, keys: Keys) -> dict[str, Any]:
    out: dict[str, Any] = {"topic": topic, "bytes": len(payload)}
    try:
        out["channel"] = topics.parse(topic).channel.value
    except ProtocolError as exc:
        out["channel"] = None
        out["topic_error"] = exc.reason.value
    try:
        signed = cose.verify1(payload, keys.resolve)
        out.update(verified=True, kid=signed.kid.hex(), signer=keys.keys[signed.kid][0])
        body = signed.payload
    except ProtocolError as exc:
        out.update(verified=False, error=exc.reason.value)
        try:
            body = cose.peek_payload(payload)
        except ProtocolError:
            return out
    try:
        msg = messages.decode(body)
    except ProtocolError as exc:
        out["decode_error"] = f"{exc.reason.value}: {exc.detail}"
        return out
    out["kind"] = type(msg).__name__
    out["payload"] = to_json(cbor.loads(body))
    out["fields"] = _plain(dataclasses.asdict(msg))
    if isinstance(msg, messages.Trigger):
        out["fields"]["trigger"] = msg.trigger
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return to_json(value)


def render(info: dict[str, Any]) -> str:
    verified = info.get("verified")
    mark = "ok " if verified is True else "BAD" if verified is False else "?  "
    head = f"[{mark}] {info['topic']}  {info.get('kind', '?')}"
    if info.get("verified"):
        head += f"  signed by {info.get('signer')}"
    elif "error" in info:
        head += f"  ({info['error']})"
    fields = info.get("fields", {})
    body = "  ".join(f"{k}={v}" for k, v in fields.items() if k not in ("model_sha256",))
    return f"{head}\n      {body}" if body else head


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.tap",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", default="mqtt://127.0.0.1:1883", help="broker URL")
    parser.add_argument("--fleet", default="+", help="fleet to watch (default: all)")
    parser.add_argument("--data", type=Path, help="bridge data directory (bridge key, database)")
    parser.add_argument("--store", help="registry database (SQLite path or postgresql:// DSN)")
    parser.add_argument("--bridge-key", help="bridge public key, hex")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--count", type=int, default=0, help="stop after N messages")
    parser.add_argument(
        "--verified-only", action="store_true", help="leave out messages that did not verify"
    )
    parser.add_argument(
        "--username", help="broker account (an observer: cloud-bridge broker-account)"
    )
    parser.add_argument("--password-file", type=Path, help="the account's password file")
    args = parser.parse_args(argv)

    bridge_key = bytes.fromhex(args.bridge_key) if args.bridge_key else None
    store = args.store
    if args.data:
        key_file = args.data / "bridge.key"
        if bridge_key is None and key_file.exists():
            bridge_key = bytes(
                nacl.signing.SigningKey(bytes.fromhex(key_file.read_text().strip())).verify_key
            )
        if store is None and (args.data / "bridge.sqlite3").exists():
            store = str(args.data / "bridge.sqlite3")
    keys = Keys(bridge_key, store)
    parts = urlsplit(args.url)
    done = threading.Event()
    seen = 0
    unverified = 0

    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        nonlocal seen, unverified
        if args.count and seen >= args.count:
            return  # the network thread may deliver one more before the loop stops
        info = describe(msg.topic, bytes(msg.payload), keys)
        if args.verified_only and info.get("verified") is not True:
            unverified += 1
            return
        print(json.dumps(info) if args.json else render(info), flush=True)
        seen += 1
        if args.count and seen >= args.count:
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    if args.username:
        try:
            password = args.password_file.read_text().strip() if args.password_file else None
        except OSError as exc:
            print(f"tap: cannot read {args.password_file}: {exc.strerror}", file=sys.stderr)
            return 2
        client.username_pw_set(args.username, password)
    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe(f"{topics.PREFIX}/{args.fleet}/#", qos=1)
    try:
        client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    except OSError as exc:
        print(f"tap: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    client.loop_start()
    done.wait()
    client.disconnect()
    client.loop_stop()
    if unverified:
        print(f"tap: left out {unverified} messages that did not verify", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`cloud-bridge devices diag ID`: ask a device for its diagnostics and print the answer.

The CLI signs a `diag` command with the bridge key (sender `<bridge id>-cli`, expiring with the
wait), listens on the device's diag topic with the CLI's own broker account, and prints the
signed Diag message the device answers with (verified with the device's enrolled keys). No
answer within --timeout: the device is offline, or has not yet come back (exit 1).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Callable
from typing import Any

from cloud_bridge import broker_cli, keyfile
from cloud_bridge.config import BridgeConfig
from cloud_bridge.errors import BridgeError

EXIT_NO_ANSWER = 1
EXAMPLE = "cloud-bridge devices diag phone-1 --lines 20 --timeout 15 --data var/bridge"


def add_parser(
    dsub: Any, common: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]
) -> None:
    p = common(
        dsub.add_parser(
            "diag",
            help="ask a device for its recent log, last crash, uptime and figures",
            description="Send the device a signed diag command over MQTT and print its signed "
            "answer: the last log lines (as many as fit in 3 KiB), the last crash kept across "
            "restarts (an exception, or an unclean end such as SIGKILL or a power cut), uptime, "
            "memory, outbox and link figures.",
            epilog=f"example: {EXAMPLE}",
        )
    )
    p.add_argument("device_id")
    p.add_argument("--lines", type=int, default=50, help="log lines wanted, 0-200 (50)")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds to wait (15)")
    p.add_argument("--json", action="store_true")


def cmd_diag(args: argparse.Namespace, cfg: BridgeConfig, now_ms: int) -> int:
    import nacl.signing
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    from cloud_bridge.publish import operator_publisher
    from cloud_bridge.registry import Registry
    from cloud_bridge.store import open_store
    from protocol import envelope, topics
    from protocol import messages as m
    from protocol.errors import ProtocolError
    from protocol.topics import Channel

    if not 0 <= args.lines <= 200:
        raise BridgeError("--lines must be from 0 to 200")
    key = keyfile.load(cfg.key_path)
    registry = Registry()
    with open_store(cfg.store_url) as store:
        with store.transaction() as tx:
            device = registry.device(tx, args.device_id)
            keys = {k.kid: k.public_key for k in registry.keys_of(tx, args.device_id)}
        if device is None:
            raise BridgeError(f"no device {args.device_id!r} is enrolled")
        cmd = operator_publisher(cfg.instance, key, store).make(
            m.Command,
            device=args.device_id,
            command="diag",
            args={"lines": args.lines},
            expires_ms=now_ms + int(args.timeout * 1000),
        )
    sealed = envelope.seal(cmd, key)
    answers: list[m.Diag] = []
    subscribed, answered = threading.Event(), threading.Event()

    def resolve(kid: bytes) -> nacl.signing.VerifyKey | None:
        public = keys.get(kid)
        return nacl.signing.VerifyKey(public) if public else None

    def on_message(_c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        try:
            _s, got = envelope.unseal(bytes(msg.payload), resolve)
        except ProtocolError:
            return  # not signed by the device: ignored
        if isinstance(got, m.Diag) and got.sender == args.device_id and got.seq == cmd.seq:
            answers.append(got)
            answered.set()

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"{cfg.instance}-diag-{now_ms}",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    if cfg.username:  # the CLI's own account (the bridge's would take its session over)
        password = cfg.password_file.read_text().strip() if cfg.password_file else None
        client.username_pw_set(cfg.username + broker_cli.CLI_SUFFIX, password)
    client.on_message = on_message
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_connect = lambda c, *_: c.subscribe(
        topics.device(device.fleet, args.device_id, Channel.DIAG), qos=1
    )
    try:
        client.connect(cfg.mqtt_host, cfg.mqtt_port)
    except OSError as exc:
        raise BridgeError(f"cannot reach the broker at {cfg.mqtt_url}: {exc}") from exc
    client.loop_start()
    try:
        if not subscribed.wait(10):
            raise BridgeError("the broker did not confirm the subscription to the diag topic")
        client.publish(topics.command(device.fleet, args.device_id, "diag"), sealed, 1)
        answered.wait(args.timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    if not answers:
        print(
            f"cloud-bridge: no diagnostics from {args.device_id} within {args.timeout:g} s: the "
            "device is offline or did not take the command (its expiry has passed now)",
            file=sys.stderr,
        )
        return EXIT_NO_ANSWER
    _print(args, answers[0])
    return 0


def _print(args: argparse.Namespace, d: Any) -> None:
    doc = {
        "device": d.sender,
        "boot": d.boot,
        "uptime_s": d.uptime_s,
        "crash": d.crash,
        "crash_ms": d.crash_ms,
        "figures": dict(d.figures),
        "log": list(d.log),
    }
    if args.json:
        print(json.dumps(doc))
        return
    print(f"{d.sender}: boot {d.boot}, up {d.uptime_s} s")
    print(f"last crash: {d.crash or '(none)'}" + (f" at {d.crash_ms} ms" if d.crash_ms else ""))
    print("figures: " + " ".join(f"{k}={v}" for k, v in sorted(d.figures.items())))
    for line in d.log:
        print(f"  {line}")

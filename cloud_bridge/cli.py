"""cloud-bridge: set up the bridge, manage devices and pools, run it.

Every subcommand takes --data DIR (default ./var/bridge): the bridge key, the default SQLite
database and bridge.toml live there. Exit codes: 0 ok, 1 failed while running, 2 bad usage,
configuration or input.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import cloud_bridge
from cloud_bridge import (
    broker_cli,
    claims_cli,
    desired_cli,
    diag_cli,
    keyfile,
    touch_cli,
    update_cli,
)
from cloud_bridge import config as config_mod
from cloud_bridge.errors import BridgeError
from cloud_bridge.pool.cli import add_parser as add_pool_parser
from cloud_bridge.scheduler_cli import add_parser as add_scheduler_parser

EXIT_FAILED, EXIT_USAGE = 1, 2
DEFAULT_DATA = Path("var/bridge")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cloud-bridge",
        description="Cloud bridge: verifies signed device messages, keeps a durable event log, "
        "drives the credit-pool engine and publishes signed decisions and pool state.",
        epilog="Amounts are integer fen (1 yuan = 100 fen). Exit codes: 0 ok, 1 failed while "
        "running, 2 bad usage, configuration or input.",
    )
    parser.add_argument("--version", action="version", version=cloud_bridge.__version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--data",
            type=Path,
            default=DEFAULT_DATA,
            help="data directory: bridge key, database, bridge.toml (./var/bridge)",
        )
        p.add_argument(
            "--config",
            type=Path,
            default=None,
            help="bridge.toml (default: DATA/bridge.toml when it exists)",
        )
        return p

    init = common(
        sub.add_parser(
            "init",
            help="create the bridge key, the database and a starter bridge.toml",
            description="Create DATA/bridge.key (Ed25519, 0600), the database with its schema, "
            "DATA/bridge.toml and DATA/mqtt.pass (0600: the bridge's broker password, whose "
            "hash becomes its broker account). Safe to run again: existing files are kept.",
        )
    )
    init.add_argument("--fleet", default="default", help="fleet this bridge serves")
    init.add_argument("--mqtt-url", default="mqtt://127.0.0.1:1883")
    init.add_argument("--json", action="store_true")

    dev = sub.add_parser("devices", help="enroll, list, revoke devices; rotate their keys")
    dsub = dev.add_subparsers(dest="devices_command", metavar="ACTION", required=True)
    enroll = common(
        dsub.add_parser(
            "enroll",
            help="enroll a device from its enrollment.cbor",
            description="Check the record's self-signature and register the device for USER. "
            "The record must be for the fleet this bridge serves ([bridge] fleet).",
            epilog="example: cloud-bridge devices enroll var/phone-1/enrollment.cbor "
            "--user alice --data var/bridge",
        )
    )
    enroll.add_argument("file", type=Path, help="enrollment.cbor from edge-agent provision")
    enroll.add_argument("--user", required=True, help="the user (pool) the device belongs to")
    enroll.add_argument("--json", action="store_true")
    lst = common(dsub.add_parser("list", help="list enrolled devices"))
    lst.add_argument("--json", action="store_true")
    revoke = common(dsub.add_parser("revoke", help="revoke a device: its keys stop verifying"))
    revoke.add_argument("device_id")
    rotate = common(
        dsub.add_parser(
            "rotate",
            help="ask a device to rotate its key",
            description="Send the device a signed rotate command over MQTT; the device answers "
            "with an enrollment signed by its current key, which the running bridge registers.",
        )
    )
    rotate.add_argument("device_id")
    desired_cli.add_parsers(dsub, common)
    diag_cli.add_parser(dsub, common)
    update_cli.add_device_parser(dsub, common)

    run = common(sub.add_parser("run", help="run the bridge until SIGTERM"))
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    broker_cli.add_parsers(sub, common)
    claims_cli.add_parsers(sub, common)
    touch_cli.add_parsers(sub, common)
    update_cli.add_fleet_parser(sub, common)
    add_pool_parser(sub)
    add_scheduler_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        if args.command in ("pool", "scheduler"):
            return int(args.run(args))  # the pool subcommands and the scheduler set `run`
        if args.command == "broker-config":
            return broker_cli.cmd_broker_config(args, load_config(args))
        if args.command == "broker-account":
            return broker_cli.cmd_broker_account(args, load_config(args), now_ms())
        if args.command == "claims":
            return claims_cli.cmd_claims(args, load_config(args), now_ms())
        if args.command == "touch":
            return touch_cli.cmd_touch(args, load_config(args), now_ms())
        if args.command == "fleet":
            return update_cli.cmd_fleet(args, load_config(args))
        handler = {"init": cmd_init, "devices": cmd_devices, "run": cmd_run}[args.command]
        return int(handler(args))
    except BridgeError as exc:
        print(f"cloud-bridge: {exc}", file=sys.stderr)
        return EXIT_USAGE


def load_config(args: argparse.Namespace) -> config_mod.BridgeConfig:
    path = args.config
    if path is None and (args.data / "bridge.toml").exists():
        path = args.data / "bridge.toml"
    return config_mod.load(path, args.data)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# ---- init ------------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    from cloud_bridge.store import open_store

    data: Path = args.data
    key, created = keyfile.load_or_create(data / "bridge.key")
    toml = args.config or data / "bridge.toml"
    if not toml.exists():
        toml.write_text(
            f'[bridge]\nid = "bridge-1"\nfleet = "{args.fleet}"\n\n'
            f'[mqtt]\nurl = "{args.mqtt_url}"\nusername = "bridge-1"\n'
            f'password_file = "{broker_cli.MQTT_PASS}"\n'
            '# share_group = "bridges"   # MQTT 5 shared subscription for several bridges\n\n'
            '[store]\npath = "bridge.sqlite3"\n# dsn = "postgresql://user@host/db"\n\n'
            "[metrics]\nport = 0\n"
        )
    cfg = config_mod.load(toml, data)
    with open_store(cfg.store_url) as store:
        with store.transaction() as tx:
            account = broker_cli.bridge_account(cfg, tx, now_ms())
        broker_cli.sync(cfg, store)
    out = {
        "public_key": bytes(key.verify_key).hex(),
        "data_dir": str(data.resolve()),
        "config": str(toml.resolve()),
        "store": cfg.store_url,
        "created_key": created,
        "mqtt_username": account,
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"bridge key  {data / 'bridge.key'} ({'new' if created else 'kept'})")
        print(f"public key  {out['public_key']}  (give it to devices: [bridge] public_key)")
        print(f"config      {toml}")
        print(f"database    {cfg.store_url}")
        secret = cfg.password_file or data / broker_cli.MQTT_PASS
        print(f"broker      user {account}, password in {secret}")
        if not cfg.username:
            print(
                f'            add to [mqtt] in {toml.name}: username = "{account}" and '
                f'password_file = "{secret}" (needed on a broker that requires passwords)'
            )
    return 0


# ---- devices ---------------------------------------------------------------------------------


def cmd_devices(args: argparse.Namespace) -> int:
    from cloud_bridge.registry import Registry
    from cloud_bridge.store import broker_repo, open_store

    cfg = load_config(args)
    action = args.devices_command
    if action == "config":
        return desired_cli.cmd_config(args, cfg, now_ms())
    if action == "diag":
        return diag_cli.cmd_diag(args, cfg, now_ms())
    if action == "update":
        return update_cli.cmd_device_update(args, cfg)
    if action == "rotate":
        code = _rotate(cfg, args.device_id)
        with open_store(cfg.store_url) as store:
            broker_cli.sync(cfg, store)
        return code
    registry = Registry()
    with open_store(cfg.store_url) as store, store.transaction() as tx:
        if action == "enroll":
            try:
                data = args.file.read_bytes()
            except OSError as exc:
                raise BridgeError(f"cannot read {args.file}: {exc.strerror}") from exc
            device = registry.enroll(tx, data, args.user, now_ms(), fleet=cfg.fleet)
            if broker_repo.account(tx, device.device_id) is None:
                print(
                    f"cloud-bridge: warning: the record of {device.device_id} carries no MQTT "
                    "password hash (made before broker accounts): it cannot connect to a broker "
                    "that requires passwords until it is provisioned again",
                    file=sys.stderr,
                )
            _print(
                args,
                device.to_json(),
                f"enrolled {device.device_id} ({device.kind}) for "
                f"user {device.user_id} in fleet {device.fleet}",
            )
        elif action == "list":
            devices = registry.devices(tx)
            if args.json:
                print(json.dumps([d.to_json() for d in devices]))
            for d in devices if not args.json else []:
                print(
                    f"{d.device_id:24} {d.kind:9} {d.status:8} user={d.user_id} "
                    f"fleet={d.fleet} keygen={d.key_generation}"
                )
        elif action == "revoke":
            n = registry.revoke(tx, args.device_id)
            print(f"revoked {args.device_id} ({n} key{'s' if n != 1 else ''})")
    if action in ("enroll", "revoke"):
        with open_store(cfg.store_url) as store:
            broker_cli.sync(cfg, store)
    return 0


def _rotate(cfg: config_mod.BridgeConfig, device_id: str) -> int:
    from cloud_bridge.command_out import send_commands

    send_commands(cfg, [device_id], "rotate", {})
    print(f"rotate queued for {device_id}: the running bridge sends it and registers the new key")
    return 0


def _print(args: argparse.Namespace, doc: dict[str, Any], text: str) -> None:
    print(json.dumps(doc) if args.json else text)


# ---- run -------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from cloud_bridge.server import BridgeServer

    cfg = load_config(args)
    key = keyfile.load(cfg.key_path)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = BridgeServer(cfg, key)
    try:
        server.run(stop)
    except BridgeError:
        raise
    except Exception as exc:
        logging.getLogger("cloud-bridge").exception("bridge failed")
        print(f"cloud-bridge: failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`cloud-bridge devices config set|show`: the desired configuration of a device.

`set` stores the next version of the device's desired configuration and, in the same
transaction, a signed `config` command carrying it for the running bridge to publish (an online
device converges at once); a device that was offline gets it on its next birth, because its
birth reports an older version (cloud_bridge.desired). `show` prints desired and reported.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from cloud_bridge import desired
from cloud_bridge.config import BridgeConfig
from cloud_bridge.errors import BridgeError

EXAMPLE = "cloud-bridge devices config set phone-1 report.interval_s=30 --data var/bridge"


def add_parsers(
    dsub: Any, common: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]
) -> None:
    """`devices config set|show` under the `devices` subcommands."""
    config = dsub.add_parser(
        "config",
        help="a device's desired configuration (versioned; sent until the device runs it)",
        description="The bridge keeps a versioned desired configuration per device. `set` "
        "stores the next version and queues a signed config command for the running bridge to "
        "publish; a device that is offline gets it at its next connect, when its birth reports "
        "an older version. Keys are the agent's remotely settable dotted keys "
        "(report.interval_s, report.status_interval_s, outbox.max_messages, sensors.day_s); "
        "the device refuses others.",
        epilog=f"example: {EXAMPLE}",
    )
    csub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    set_ = common(
        csub.add_parser(
            "set",
            help="set keys of the desired configuration (a new version)",
            description="KEY=VALUE pairs change the current desired configuration; KEY= "
            "removes a key (the device falls back to its file). Integers, true/false and text.",
            epilog=f"example: {EXAMPLE}",
        )
    )
    set_.add_argument("device_id")
    set_.add_argument("assignments", nargs="+", metavar="KEY=VALUE")
    set_.add_argument("--json", action="store_true")
    show = common(csub.add_parser("show", help="desired and reported version of a device"))
    show.add_argument("device_id")
    show.add_argument("--json", action="store_true")


def doc(row: desired.DeviceConfig | None, device_id: str) -> dict[str, Any]:
    if row is None:
        row = desired.DeviceConfig(device_id)
    return {
        "device_id": row.device_id,
        "desired_version": row.desired_version,
        "desired": dict(row.desired),
        "reported_version": row.reported_version,
        "drifted": row.desired_version > 0 and row.drifted,
    }


def cmd_config(args: argparse.Namespace, cfg: BridgeConfig, now_ms: int) -> int:
    from cloud_bridge import keyfile
    from cloud_bridge.outputs import Outputs
    from cloud_bridge.publish import operator_publisher
    from cloud_bridge.registry import Registry
    from cloud_bridge.store import desired_repo, open_store

    with open_store(cfg.store_url) as store:
        if args.config_command == "show":
            with store.transaction() as tx:
                out = doc(desired_repo.get(tx, args.device_id), args.device_id)
            _print(args, out)
            return 0
        outputs = Outputs(operator_publisher(cfg.instance, keyfile.load(cfg.key_path), store))
        with store.transaction() as tx:
            device = Registry().device(tx, args.device_id)
            if device is None:
                raise BridgeError(f"no device {args.device_id!r} is enrolled")
            current = desired_repo.get(tx, args.device_id, for_update=True)
            values = desired.parse_assignments(args.assignments, current.desired if current else {})
            row = desired_repo.set_desired(tx, args.device_id, values, now_ms)
            cmd = outputs.command(
                tx, device.fleet, args.device_id, "config", desired.command_args(row)
            )
            outputs.seal_and_store(tx, [cmd])
            desired_repo.save_sent(tx, [(args.device_id, cmd.seq, row.desired_version)], now_ms)
        _print(args, doc(row, args.device_id))
    return 0


def _print(args: argparse.Namespace, out: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(out, sort_keys=True))
        return
    keys = " ".join(f"{k}={v}" for k, v in sorted(out["desired"].items())) or "(none)"
    print(
        f"{out['device_id']}: desired version {out['desired_version']} ({keys}); "
        f"reported version {out['reported_version']}" + ("; drifted" if out["drifted"] else "")
    )

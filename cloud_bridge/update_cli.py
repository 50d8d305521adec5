"""`cloud-bridge devices update` and `cloud-bridge fleet manifest|rollout`: agent releases to
devices, as a signed `update` command carrying a manifest signed with the bridge key
(agent.update.manifest; docs/operations.md "Agent and firmware updates")."""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Callable
from pathlib import Path

from agent.update.manifest import TARGET_AGENT, TARGET_KINDS, Manifest, ManifestError, verify
from cloud_bridge import keyfile, rollout
from cloud_bridge.config import BridgeConfig
from cloud_bridge.errors import BridgeError

Common = Callable[[argparse.ArgumentParser], argparse.ArgumentParser]


def add_manifest_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", type=Path, help="a signed manifest (from `fleet manifest`)")
    p.add_argument("--version", help="build the manifest: the release's version, e.g. 1.2.0")
    p.add_argument("--url", help="build the manifest: where devices download the release")
    p.add_argument("--file", type=Path, help="build the manifest: the release tarball itself")
    p.add_argument(
        "--min-version",
        default=None,
        help="build the manifest: the floor devices keep once it is committed (anti-rollback; "
        "default: --version, so nothing older can follow it)",
    )
    p.add_argument(
        "--target",
        choices=sorted(TARGET_KINDS),
        default=TARGET_AGENT,
        help="build the manifest: what the release runs on (default linux-agent: an agent "
        "tarball; esp32: a firmware image, http:// URL only, sent to mcu devices)",
    )


def add_device_parser(dsub: argparse._SubParsersAction, common: Common) -> None:  # type: ignore[type-arg]
    update = common(
        dsub.add_parser(
            "update",
            help="send a device an agent release (signed manifest)",
            description="Send DEVICE the signed `update` command. The device downloads the "
            "release, switches to it, and keeps it only once a report of the new version was "
            "acked; otherwise it rolls back by itself. Give --manifest, or --version, --url and "
            "--file to build and sign one with the bridge key.",
            epilog="example: cloud-bridge devices update pi-rig-01 --version 1.2.0 --url "
            "https://updates.example/edge-agent-1.2.0.tar.gz --file edge-agent-1.2.0.tar.gz",
        )
    )
    update.add_argument("device_id")
    add_manifest_arguments(update)


def add_fleet_parser(sub: argparse._SubParsersAction, common: Common) -> None:  # type: ignore[type-arg]
    fleet = sub.add_parser("fleet", help="agent releases: sign a manifest, roll it out")
    fsub = fleet.add_subparsers(dest="fleet_command", metavar="ACTION", required=True)
    manifest = common(
        fsub.add_parser(
            "manifest",
            help="sign a release manifest with the bridge key",
            description="Write a manifest (version, SHA-256 and size of FILE, URL, minimum "
            "version) signed with the bridge key, for `devices update` and `fleet rollout`.",
            epilog="example: cloud-bridge fleet manifest --version 1.2.0 --url "
            "https://updates.example/edge-agent-1.2.0.tar.gz --file edge-agent-1.2.0.tar.gz "
            "--out edge-agent-1.2.0.manifest",
        )
    )
    add_manifest_arguments(manifest)
    manifest.add_argument("--out", type=Path, required=True, help="where to write it")
    roll = common(
        fsub.add_parser(
            "rollout",
            help="send a release to a stable percentage of the fleet's active devices",
            description="Send the signed `update` command to the active devices of the "
            "manifest's target (linux-agent: phone, wearable, fridge, ev; esp32: mcu) whose "
            "bucket (SHA-256 of the device id, 0 to 9999) is below PERCENT * 100: the same "
            "devices every time, and raising PERCENT only adds devices.",
            epilog="example: cloud-bridge fleet rollout --manifest edge-agent-1.2.0.manifest "
            "--percent 10",
        )
    )
    add_manifest_arguments(roll)
    roll.add_argument("--percent", type=float, required=True, help="0 to 100")
    roll.add_argument("--dry-run", action="store_true", help="list the devices, send nothing")


def signed_manifest(args: argparse.Namespace, cfg: BridgeConfig) -> tuple[bytes, Manifest]:
    """The manifest to send (signed, and as read): --manifest checked against the bridge key,
    or one built."""
    key = keyfile.load(cfg.key_path)
    if args.manifest is not None:
        try:
            data: bytes = args.manifest.read_bytes()
        except OSError as exc:
            raise BridgeError(f"cannot read {args.manifest}: {exc.strerror}") from exc
        try:
            return data, verify(data, bytes(key.verify_key))
        except ManifestError as exc:
            raise BridgeError(f"{args.manifest}: {exc} (sign it with this bridge's key)") from exc
    if not (args.version and args.url and args.file):
        raise BridgeError("give --manifest FILE, or --version, --url and --file to build one")
    try:
        release = args.file.read_bytes()
    except OSError as exc:
        raise BridgeError(f"cannot read {args.file}: {exc.strerror}") from exc
    try:
        manifest = Manifest(
            args.version,
            hashlib.sha256(release).digest(),
            args.url,
            len(release),
            args.version if args.min_version is None else args.min_version,
            args.target,
        )
    except ManifestError as exc:
        raise BridgeError(str(exc)) from exc
    return manifest.sign(key), manifest


def cmd_device_update(args: argparse.Namespace, cfg: BridgeConfig) -> int:
    from cloud_bridge.command_out import send_commands

    data, _manifest = signed_manifest(args, cfg)
    send_commands(cfg, [args.device_id], "update", {"manifest": data})
    print(f"update sent to {args.device_id}; it answers with a report (cmd_result pending)")
    return 0


def cmd_fleet(args: argparse.Namespace, cfg: BridgeConfig) -> int:
    from cloud_bridge.command_out import active_devices, send_commands

    data, manifest = signed_manifest(args, cfg)
    if args.fleet_command == "manifest":
        args.out.write_bytes(data)
        print(f"manifest written to {args.out} ({len(data)} bytes)")
        return 0
    try:
        # only the kinds that run the manifest's target (an esp32 image never goes to an agent)
        targets = rollout.chosen(active_devices(cfg, TARGET_KINDS[manifest.target]), args.percent)
    except ValueError as exc:
        raise BridgeError(str(exc)) from exc
    if args.dry_run:
        print("\n".join(targets) if targets else "(no device)")
        return 0
    send_commands(cfg, targets, "update", {"manifest": data})
    print(
        f"update sent to {len(targets)} {manifest.target} device(s) "
        f"({args.percent:g} % of the fleet's {', '.join(sorted(TARGET_KINDS[manifest.target]))})"
    )
    for device in targets:
        print(f"  {device}", file=sys.stdout)
    return 0

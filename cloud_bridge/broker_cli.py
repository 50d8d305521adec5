"""cloud-bridge broker-config and broker-account, and the refresh the device commands run.

    cloud-bridge broker-config --out DIR [--pid-file FILE]   write passwd, acl, mosquitto.conf
    cloud-bridge broker-account NAME --role observer --password-file FILE

`init` makes the bridge's own account; `devices enroll` adds a device's (from the hash in its
record), and `enroll`, `revoke` and `rotate` call `sync` so that the files in [broker] dir stay
current and the broker reloads them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import keyfiles
from cloud_bridge import broker_files
from cloud_bridge.broker_files import Applied
from cloud_bridge.config import BridgeConfig
from cloud_bridge.errors import BridgeError
from cloud_bridge.store import broker_repo
from cloud_bridge.store.base import Store, Transaction
from protocol import mqtt_password
from protocol.errors import ProtocolError
from protocol.topics import validate_id

MQTT_PASS = mqtt_password.SECRET_FILE
"""The bridge's broker password in its data directory (mode 0600)."""
CLI_SUFFIX = "-cli"
"""The CLI's own account is the bridge's name with this suffix: the broker makes the client id
the username, so a CLI connecting as the bridge itself would take the bridge's session over."""


def add_parsers(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: Callable[[argparse.ArgumentParser], argparse.ArgumentParser],
) -> None:
    conf = common(
        sub.add_parser(
            "broker-config",
            help="write Mosquitto's passwd, acl and mosquitto.conf from the registry",
            description="Write DIR/passwd (the accounts' $7$ hashes; revoked devices left out), "
            "DIR/acl (devices publish only under their own topics; only bridges publish "
            "bridge, pool, risk and decision topics) and DIR/mosquitto.conf (no anonymous "
            "clients, client id = username, message size limit). docs/operations.md says how "
            "to run Mosquitto with them.",
        )
    )
    conf.add_argument("--out", type=Path, default=None, help="directory (default: [broker] dir)")
    conf.add_argument("--pid-file", type=Path, default=None, help="SIGHUP this pid afterwards")
    conf.add_argument("--json", action="store_true")
    acct = common(
        sub.add_parser(
            "broker-account",
            help="create or replace a bridge or observer account on the broker",
            description="Make a new secret for NAME, write it to --password-file (0600) and "
            "store its hash; an observer reads the fleet's whole tree and publishes nothing.",
        )
    )
    acct.add_argument("name", help="the MQTT username (1-64 characters of A-Z a-z 0-9 . _ -)")
    acct.add_argument("--role", required=True, choices=(broker_repo.OBSERVER, broker_repo.BRIDGE))
    acct.add_argument("--password-file", type=Path, required=True, help="where the secret goes")
    acct.add_argument("--json", action="store_true")


def sync(cfg: BridgeConfig, store: Store) -> Applied | None:
    """Rewrite the files in [broker] dir from the committed accounts and reload the broker if
    any changed; None when this bridge manages no broker files. Run after the change commits,
    so the broker never admits an account that a failed transaction left out."""
    if cfg.broker_dir is None:
        return None
    from cloud_bridge.store import claims_repo

    with store.transaction() as tx:
        accounts = broker_repo.accounts(tx)
        accounts += claims_repo.accounts(tx, time.time_ns() // 1_000_000)
    applied = broker_files.apply_configured(cfg, accounts)
    if applied is not None and applied.changed:
        reloaded = f"; reloaded pid {applied.reloaded_pid}" if applied.reloaded_pid else ""
        print(f"broker files {', '.join(applied.changed)} rewritten{reloaded}", file=sys.stderr)
    return applied


def make_secret(path: Path, *, overwrite: bool) -> str:
    """A new secret written to `path` (0600); its `$7$` hash."""
    secret = mqtt_password.new_secret()
    try:
        keyfiles.write_private(path, (secret + "\n").encode(), overwrite=overwrite)
    except FileExistsError:
        raise BridgeError(f"{path} exists; remove it first to make a new password") from None
    except OSError as exc:
        raise BridgeError(f"cannot write {path}: {exc.strerror}") from exc
    return mqtt_password.hash_password(secret)


def bridge_account(cfg: BridgeConfig, tx: Transaction, now_ms: int) -> str:
    """At `init`: the bridge's own secret ([mqtt] password_file, else DATA/mqtt.pass; made if
    absent, kept if present) and its accounts, the bridge's ([mqtt] username, else its id) and
    its CLI's, both with the secret's hash; the bridge's username."""
    username = cfg.username or cfg.instance
    path = cfg.password_file or cfg.data_dir / MQTT_PASS
    if path.exists() and broker_repo.account(tx, username) is not None:
        return username
    try:
        secret = path.read_text().strip() if path.exists() else ""
    except OSError as exc:
        raise BridgeError(f"cannot read {path}: {exc.strerror}") from exc
    hashed = mqtt_password.hash_password(secret) if secret else make_secret(path, overwrite=True)
    for name in (username, username + CLI_SUFFIX):
        _put_service(tx, name, broker_repo.BRIDGE, hashed, now_ms)
    return username


def _put_service(tx: Transaction, name: str, role: str, hashed: str, now_ms: int) -> None:
    try:
        validate_id(name, "account name")
    except ProtocolError as exc:
        raise BridgeError(str(exc)) from exc
    existing = broker_repo.account(tx, name)
    if existing is not None and existing.role == broker_repo.DEVICE:
        raise BridgeError(f"{name} is a device's account; choose another name")
    broker_repo.put(tx, name, role, hashed, now_ms)


def cmd_broker_config(args: argparse.Namespace, cfg: BridgeConfig) -> int:
    from cloud_bridge.store import open_store

    out = args.out or cfg.broker_dir
    if out is None:
        raise BridgeError("give --out DIR, or set [broker] dir in bridge.toml")
    pid_file = args.pid_file or cfg.broker_pid_file
    with open_store(cfg.store_url) as store, store.transaction() as tx:
        accounts = broker_repo.accounts(tx)
    applied = broker_files.apply(
        cfg.fleet, accounts, out.resolve(), port=cfg.broker_port, pid_file=pid_file
    )
    device_accounts = sum(1 for a in accounts if a.role == broker_repo.DEVICE)
    doc = {
        "dir": str(out.resolve()),
        "changed": list(applied.changed),
        "reloaded_pid": applied.reloaded_pid,
        "accounts": len(accounts),
        "device_accounts": device_accounts,
    }
    if args.json:
        print(json.dumps(doc))
    else:
        print(
            f"broker files in {out}: {', '.join(applied.changed) or 'unchanged'}; "
            f"{len(accounts)} accounts ({device_accounts} devices)"
        )
    return 0


def cmd_broker_account(args: argparse.Namespace, cfg: BridgeConfig, now_ms: int) -> int:
    from cloud_bridge.store import open_store

    with open_store(cfg.store_url) as store, store.transaction() as tx:
        try:
            validate_id(args.name, "account name")
        except ProtocolError as exc:
            raise BridgeError(str(exc)) from exc
        hashed = make_secret(args.password_file, overwrite=False)
        names = [args.name]
        if args.role == broker_repo.BRIDGE and not args.name.endswith(CLI_SUFFIX):
            # A bridge's CLI logs in as NAME-cli with the bridge's own secret: a new secret
            # for the bridge (after a stolen data directory) must retire the old one there too.
            names.append(args.name + CLI_SUFFIX)
        for name in names:
            _put_service(tx, name, args.role, hashed, now_ms)
    with open_store(cfg.store_url) as store:
        sync(cfg, store)
    doc = {"name": args.name, "role": args.role, "password_file": str(args.password_file)}
    text = f"{args.role} account {', '.join(names)}: password in {args.password_file}"
    print(json.dumps(doc) if args.json else text)
    return 0

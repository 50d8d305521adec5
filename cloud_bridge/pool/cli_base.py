"""The pieces every `cloud-bridge pool` subcommand shares: parsers, argument types, running a
command against the store, printing an outcome. The subcommands live in cli.py (the pool's own)
and cli_apply.py (automated approval).

Exit status: 0 done, 1 refused by the engine (the result code is printed) or audit problems,
2 bad input, usage or policy, 3 the database failed. Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from cloud_bridge.config import BridgeConfig
from cloud_bridge.errors import BridgeError
from cloud_bridge.pool import commands as c
from cloud_bridge.pool.policy import load_policy
from cloud_bridge.pool.service import ATTEMPTS, Outcome, PoolService
from cloud_bridge.pool.view import PoolView
from cloud_bridge.store import Store, StoreConflict, StoreError, open_store

if TYPE_CHECKING:
    from cloud_bridge.outputs import Outputs

FEN_HELP = "amounts are integer fen: 1 yuan = 100 fen, so 12.50 yuan is 1250"
DEFAULT_DATA = Path("var/bridge")
INT_RE = re.compile(r"[0-9][0-9_]*")


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line (the brief's rule for every CLI error), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def fen(text: str) -> int:
    """An argparse type: a positive whole number of fen."""
    if not INT_RE.fullmatch(text) or int(text.replace("_", "")) <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a positive whole number of fen; {FEN_HELP}"
        )
    return int(text.replace("_", ""))


def count(text: str) -> int:
    """An argparse type: a non-negative whole number."""
    if not INT_RE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    return int(text.replace("_", ""))


class Subcommands:
    """Makes `pool` subcommands: the shared options (`common` for reads, `change` adds --key)
    and --user, so that each subcommand's own function adds only its own options."""

    def __init__(self, sub: Any) -> None:
        self._sub = sub
        self.common = argparse.ArgumentParser(add_help=False)
        self.common.add_argument(
            "--db",
            default=None,
            help="SQLite path or postgresql:// DSN (default: the bridge's database in --data)",
        )
        self.common.add_argument(
            "--data",
            type=Path,
            default=None,
            help="bridge data directory (default var/bridge): its database when --db is not "
            "given, and its key, with which a change is published (with --db: only if given)",
        )
        self.common.add_argument(
            "--config",
            type=Path,
            default=None,
            help="the bridge's TOML config (default: DATA/bridge.toml if it exists): its "
            "fleet and id name the pool states a change publishes",
        )
        self.common.add_argument("--json", action="store_true", help="print JSON instead of text")
        self.common.add_argument(
            "--policy", metavar="FILE", help="credit policy TOML (default: built in)"
        )
        self.change = argparse.ArgumentParser(add_help=False, parents=[self.common])
        self.change.add_argument("--key", help="idempotency key (default: a fresh one)")
        self.change.add_argument(
            "--no-publish",
            action="store_true",
            help="change the database only, publishing no pool event or state (without it, a "
            "change needs the bridge key in --data and exits 2 when there is none)",
        )

    def add(
        self,
        name: str,
        help_text: str,
        *,
        change: bool = True,
        user: bool = True,
        aliases: tuple[str, ...] = (),
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = self._sub.add_parser(
            name,
            help=help_text,
            description=f"{help_text}. {FEN_HELP}.",
            parents=[self.change if change else self.common],
            aliases=list(aliases),
        )
        if user:
            p.add_argument(
                "--user", required=True, help="the pool's user id: 1-64 of [A-Za-z0-9._-]"
            )
        return p


def amount_option(
    p: argparse.ArgumentParser, *, required: bool = True, help_text: str = ""
) -> None:
    p.add_argument(
        "--amount",
        "--amount-fen",
        dest="amount_fen",
        type=fen,
        required=required,
        help=help_text or "amount, fen",
    )


def limit_option(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument(
        "--limit", "--limit-fen", dest="limit_fen", type=fen, required=True, help=help_text
    )


def hold_option(p: argparse.ArgumentParser, *, required: bool) -> None:
    help_text = "the hold's id" if required else "the hold's id (default: its idempotency key)"
    p.add_argument("--hold", dest="hold_id", metavar="HOLD_ID", required=required, help=help_text)


def usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def simple(kind: type[c.Command]) -> Callable[[argparse.Namespace, str, str], c.Command]:
    return lambda a, u, k: kind(user=u, key=k)


def guard(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def guarded(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except StoreError as exc:
            print(f"cloud-bridge pool: database error: {one_line(exc)}", file=sys.stderr)
            return 3
        except BridgeError as exc:  # InvalidCommand, PolicyError
            print(f"cloud-bridge pool: error: {one_line(exc)}", file=sys.stderr)
            return 2

    return guarded


def one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def bridge_config(args: argparse.Namespace) -> BridgeConfig:
    """The config of the bridge in --data: --config, else DATA/bridge.toml, else defaults."""
    from cloud_bridge import config

    data = args.data or DEFAULT_DATA
    toml = args.config or data / "bridge.toml"
    return config.load(toml if args.config or toml.exists() else None, data)


def database(args: argparse.Namespace) -> str:
    """--db, else the store of the bridge in --data (its config, else bridge.sqlite3)."""
    return str(args.db) if args.db else bridge_config(args).store_url


def service_of(args: argparse.Namespace) -> PoolService:
    policy = load_policy(args.policy)
    return PoolService(open_store(database(args)), policy)


def operator_outputs(args: argparse.Namespace, store: Store) -> tuple[str, Outputs] | None:
    """The fleet and the output builder with which operator commands publish their changes,
    signed with the key of the bridge in --data (loaded as `cloud-bridge run` loads it) as
    sender `<bridge id>-cli`; None with --no-publish. Without a bridge key to use and without
    --no-publish, a BridgeError (exit 2) before anything changes: a change nobody publishes
    leaves every subscriber's retained pool state behind."""
    from cloud_bridge import keyfile
    from cloud_bridge.outputs import Outputs
    from cloud_bridge.publish import operator_publisher

    cfg = bridge_config(args)
    # With --db, a key is taken only from a --data given with it: the default directory's key
    # and config may belong to another bridge than the one serving that database.
    missing = ""
    if args.db and args.data is None:
        missing = "the database was given by --db without the bridge's --data"
    elif not cfg.key_path.exists():
        missing = f"no bridge key at {cfg.key_path}"
    if getattr(args, "no_publish", False):
        return None
    if missing:
        raise BridgeError(
            f"the change would not be published: {missing}; give the bridge's --data (and "
            "--config) to publish it, or --no-publish to change the database only"
        )
    publisher = operator_publisher(cfg.instance, keyfile.load(cfg.key_path), store)
    return cfg.fleet, Outputs(publisher)


def execute_published(
    args: argparse.Namespace, service: PoolService, command: c.Command
) -> Outcome:
    """Run one command; when it changes the pool, its signed PoolEvents and PoolState go into
    the outbox in the same transaction, for the running bridge to publish (cloud_bridge.server).
    A refused command or a replayed key changes nothing and publishes nothing."""
    out = operator_outputs(args, service.store)
    if out is None:
        return service.execute(command)
    fleet, outputs = out
    for attempt in range(ATTEMPTS):
        try:
            with service.store.transaction() as tx:
                outcome = service.execute(command, tx=tx)
                pending = outputs.pool_change(tx, fleet, outcome)
                if pending:
                    outputs.seal_and_store(tx, pending)
            return outcome
        except StoreConflict:
            outputs.publisher.invalidate()  # its block may have been reserved in the rollback
            if attempt == ATTEMPTS - 1:
                raise
            time.sleep(random.uniform(0, 0.002 * 2**attempt))  # full jitter
    raise AssertionError("unreachable")


def run_command(
    build: Callable[[argparse.Namespace, str, str], c.Command],
) -> Callable[[argparse.Namespace], int]:
    @guard
    def run(args: argparse.Namespace) -> int:
        command = build(args, args.user, args.key or f"cli-{uuid.uuid4().hex}")
        service = service_of(args)
        try:
            outcome = execute_published(args, service, command)
        finally:
            service.store.close()
        print_outcome(outcome, args.json)
        return 0 if outcome.ok else 1

    return run


BALANCES = ("status", "limit_fen", "available_fen", "outstanding_fen", "held_fen", "rate_bps")


def print_outcome(outcome: Outcome, as_json: bool) -> None:
    if as_json:
        doc = outcome.to_json()
        view = doc.get("view") or {}
        # `result` and the balances at the top level, for scripts; the full view beside them.
        print(
            json.dumps(
                {"result": doc["result"], **{k: view.get(k) for k in BALANCES}, **doc}, indent=1
            )
        )
        return
    replay = " (replayed: this key was already used)" if outcome.replayed else ""
    print(f"{outcome.result.value}: {outcome.kind} {outcome.user}{replay}")
    for event in outcome.events:
        data = ", ".join(f"{k}={v}" for k, v in event.data.items())
        print(f"  event {event.kind} {data}".rstrip())
    if outcome.view is not None:
        print("  " + describe_view(outcome.view))


def describe_view(v: PoolView) -> str:
    return (
        f"{v.user} [{v.status.value}] limit {v.limit_fen} fen, available {v.available_fen}, "
        f"outstanding {v.outstanding_fen}, held {v.held_fen}, interest due {v.interest_fen}, "
        f"minimum due {v.min_due_fen}, rate {v.rate_bps} bps, version {v.version}"
    )


def view_of(args: argparse.Namespace) -> PoolView | None:
    """The pool of --user, or None after saying on stderr that there is none."""
    service = service_of(args)
    try:
        view = service.get(c.check_user(args.user))
    finally:
        service.store.close()
    if view is None:
        print(f"cloud-bridge pool: no pool for user {args.user!r}", file=sys.stderr)
    return view

"""`cloud-bridge pool ...`: operate credit pools from the command line.

Exit status: 0 done, 1 refused by the engine (the result code is printed) or audit problems,
2 bad input, usage or policy, 3 the database failed. Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from cloud_bridge.errors import BridgeError
from cloud_bridge.pool import commands as c
from cloud_bridge.pool.auditor import audit
from cloud_bridge.pool.policy import load_policy, to_toml
from cloud_bridge.pool.service import Outcome, PoolService
from cloud_bridge.pool.view import PoolView
from cloud_bridge.store import StoreError, open_store, pool_repo

FEN_HELP = "amounts are integer fen: 1 yuan = 100 fen, so 12.50 yuan is 1250"
_INT = re.compile(r"[0-9][0-9_]*")

EPILOG = f"""\
Money: {FEN_HELP}. Rates are basis points (1800 = 18.00 % a year). Times are ms.
Every change takes an idempotency --key (default: a fresh one); repeating a command with the
same key returns the first answer and changes nothing.

examples:
  cloud-bridge pool open --user alice --limit 5000000                     # approve 50,000 yuan
  cloud-bridge pool draw --user alice --amount 120000                     # draw 1,200 yuan
  cloud-bridge pool draw --user alice --amount 600000 --installments 12   # 0 % plan, 12 statements
  cloud-bridge pool draw --user alice --amount 80000 --emergency illness  # may use the reserve
  cloud-bridge pool draw --user alice --amount 900000 --emergency illness --up-to  # what's allowed
  cloud-bridge pool hold --user alice --hold order-17 --amount 30000 --ttl-ms 600000
  cloud-bridge pool confirm --user alice --hold order-17
  cloud-bridge pool repay --user alice --amount 50000 --key bank-tx-8812
  cloud-bridge pool show --user alice --json
  cloud-bridge pool audit --db postgresql://bridge@db/bridge
  cloud-bridge pool policy > policy.toml                                  # all keys and defaults
"""


class _OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line (the brief's rule for every CLI error), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def fen(text: str) -> int:
    """An argparse type: a positive whole number of fen."""
    if not _INT.fullmatch(text) or int(text.replace("_", "")) <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a positive whole number of fen; {FEN_HELP}"
        )
    return int(text.replace("_", ""))


def count(text: str) -> int:
    """An argparse type: a non-negative whole number."""
    if not _INT.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    return int(text.replace("_", ""))


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `pool` and its subcommands to the `cloud-bridge` subparsers."""
    pool = subparsers.add_parser(
        "pool",
        help="operate credit pools (open, draw, repay, holds, audit)",
        description=f"Credit pools: one approval, then draw, repay, draw again. {FEN_HELP}.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pool.__class__ = _OneLineParser  # made by cloud-bridge's parser; its errors one line too
    pool.set_defaults(run=lambda args: _usage(pool))
    sub = _Subcommands(
        pool.add_subparsers(dest="pool_command", metavar="SUBCOMMAND", parser_class=_OneLineParser)
    )
    for add in SUBCOMMANDS:
        add(sub)
    return pool  # type: ignore[no-any-return]


class _Subcommands:
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
            default=Path("var/bridge"),
            help="bridge data directory whose database to use when --db is not given (var/bridge)",
        )
        self.common.add_argument("--json", action="store_true", help="print JSON instead of text")
        self.common.add_argument(
            "--policy", metavar="FILE", help="credit policy TOML (default: built in)"
        )
        self.change = argparse.ArgumentParser(add_help=False, parents=[self.common])
        self.change.add_argument("--key", help="idempotency key (default: a fresh one)")

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


def _amount(p: argparse.ArgumentParser, *, required: bool = True, help_text: str = "") -> None:
    p.add_argument(
        "--amount",
        "--amount-fen",
        dest="amount_fen",
        type=fen,
        required=required,
        help=help_text or "amount, fen",
    )


def _limit(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument(
        "--limit", "--limit-fen", dest="limit_fen", type=fen, required=True, help=help_text
    )


def _hold_id(p: argparse.ArgumentParser, *, required: bool) -> None:
    help_text = "the hold's id" if required else "the hold's id (default: its idempotency key)"
    p.add_argument("--hold", dest="hold_id", metavar="HOLD_ID", required=required, help=help_text)


def _add_open(sub: _Subcommands) -> None:
    p = sub.add("open", "approve a credit line (or reopen a closed one)")
    _limit(p, "the credit limit, fen")
    p.add_argument("--rate-bps", type=count, help="annual rate, basis points (default: policy)")
    p.set_defaults(
        run=_command(
            lambda a, u, k: c.OpenPool(user=u, key=k, limit_fen=a.limit_fen, rate_bps=a.rate_bps)
        )
    )


def _add_draw(sub: _Subcommands) -> None:
    p = sub.add("draw", "draw money now")
    _amount(p)
    p.add_argument(
        "--installments", type=count, default=0, help="periods of a 0 %% plan (policy: 12)"
    )
    p.add_argument("--emergency", choices=[e.value for e in c.Emergency], help="an emergency draw")
    p.add_argument("--up-to", action="store_true", help="take as much of --amount as allowed")
    p.set_defaults(
        run=_command(
            lambda a, u, k: c.Draw(
                user=u,
                key=k,
                amount_fen=a.amount_fen,
                installments=a.installments,
                emergency=a.emergency,
                up_to=a.up_to,
            )
        )
    )


def _add_repay(sub: _Subcommands) -> None:
    p = sub.add("repay", "repay: billed interest, accrued interest, principal, then installments")
    _amount(p)
    p.set_defaults(run=_command(lambda a, u, k: c.Repay(user=u, key=k, amount_fen=a.amount_fen)))


def _add_hold(sub: _Subcommands) -> None:
    p = sub.add("hold", "reserve credit until confirmed, voided or expired")
    _hold_id(p, required=False)
    _amount(p)
    p.add_argument("--ttl-ms", type=fen, help="lifetime in ms (default: policy)")
    p.set_defaults(
        run=_command(
            lambda a, u, k: c.PlaceHold(
                user=u, key=k, hold_id=a.hold_id or k, amount_fen=a.amount_fen, ttl_ms=a.ttl_ms
            )
        )
    )


def _add_confirm(sub: _Subcommands) -> None:
    p = sub.add("confirm", "turn a hold into a draw (all of it, or --amount)")
    _hold_id(p, required=True)
    _amount(p, required=False, help_text="confirm less than held (fen); the rest is released")
    p.set_defaults(
        run=_command(
            lambda a, u, k: c.ConfirmHold(user=u, key=k, hold_id=a.hold_id, amount_fen=a.amount_fen)
        )
    )


def _add_void(sub: _Subcommands) -> None:
    p = sub.add("void", "void a hold (release it unused)", aliases=("release",))
    _hold_id(p, required=True)
    p.set_defaults(run=_command(lambda a, u, k: c.ReleaseHold(user=u, key=k, hold_id=a.hold_id)))


def _add_freeze(sub: _Subcommands) -> None:
    p = sub.add("freeze", "stop draws and holds (repayments still work)")
    p.add_argument("--reason", default="risk", help="a reason code of [a-z0-9_] (default risk)")
    p.set_defaults(run=_command(lambda a, u, k: c.Freeze(user=u, key=k, reason=a.reason)))


def _add_simple(sub: _Subcommands) -> None:
    """The commands that take nothing but the pool and a key."""
    for name, help_text, kind in (
        ("unfreeze", "lift a freeze", c.Unfreeze),
        ("close", "close a pool that owes nothing", c.ClosePool),
        ("health", "a health goal was met: boost the limit one step", c.HealthGoalMet),
        ("tick", "expire holds and close statements due by now", c.Tick),
    ):
        sub.add(name, help_text).set_defaults(run=_command(_simple(kind)))


def _add_set_limit(sub: _Subcommands) -> None:
    p = sub.add("set-limit", "operator limit change (not below what is used or held)")
    _limit(p, "the new limit, fen")
    p.set_defaults(run=_command(lambda a, u, k: c.SetLimit(user=u, key=k, limit_fen=a.limit_fen)))


def _add_mileage(sub: _Subcommands) -> None:
    p = sub.add("mileage", "report EV kilometres in the last month (picks the rate tier)")
    p.add_argument("--km", type=count, required=True, help="kilometres in the last month")
    p.set_defaults(run=_command(lambda a, u, k: c.ReportMileage(user=u, key=k, km_per_month=a.km)))


def _add_life_stage(sub: _Subcommands) -> None:
    p = sub.add("life-stage", "a life-stage event adjusts the limit")
    p.add_argument("--event", required=True, choices=[e.value for e in c.LifeEvent])
    p.set_defaults(run=_command(lambda a, u, k: c.LifeStage(user=u, key=k, event=a.event)))


def _add_reads(sub: _Subcommands) -> None:
    """The subcommands that change nothing (no --key)."""
    sub.add("show", "show one pool", change=False).set_defaults(run=_show)
    sub.add(
        "statement", "the pool's statement: interest, minimum due, due date", change=False
    ).set_defaults(run=_statement)
    sub.add("list", "list every pool", change=False, user=False).set_defaults(run=_list)
    p = sub.add("history", "a pool's events, oldest first", change=False, aliases=("events",))
    p.add_argument("--since", type=count, default=0, help="only after this version")
    p.set_defaults(run=_events)
    sub.add(
        "audit",
        "check every pool against the ledger and the invariants",
        change=False,
        user=False,
    ).set_defaults(run=_audit)
    sub.add(
        "policy",
        "print the effective policy as TOML (every key, its value and help)",
        change=False,
        user=False,
    ).set_defaults(run=_policy)


SUBCOMMANDS: tuple[Callable[[_Subcommands], None], ...] = (
    _add_open,
    _add_draw,
    _add_repay,
    _add_hold,
    _add_confirm,
    _add_void,
    _add_freeze,
    _add_simple,
    _add_set_limit,
    _add_mileage,
    _add_life_stage,
    _add_reads,
)
"""Each adds its subcommands' parsers, in the order `--help` lists them."""


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _simple(kind: type[c.Command]) -> Callable[[argparse.Namespace, str, str], c.Command]:
    return lambda a, u, k: kind(user=u, key=k)


def _guard(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def guarded(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except StoreError as exc:
            print(f"cloud-bridge pool: database error: {_line(exc)}", file=sys.stderr)
            return 3
        except BridgeError as exc:  # InvalidCommand, PolicyError
            print(f"cloud-bridge pool: error: {_line(exc)}", file=sys.stderr)
            return 2

    return guarded


def _line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def database(args: argparse.Namespace) -> str:
    """--db, else the store of the bridge in --data (its bridge.toml, else bridge.sqlite3)."""
    if args.db:
        return str(args.db)
    from cloud_bridge import config

    toml = args.data / "bridge.toml"
    return config.load(toml if toml.exists() else None, args.data).store_url


def _service(args: argparse.Namespace) -> PoolService:
    policy = load_policy(args.policy)
    return PoolService(open_store(database(args)), policy)


def _command(
    build: Callable[[argparse.Namespace, str, str], c.Command],
) -> Callable[[argparse.Namespace], int]:
    @_guard
    def run(args: argparse.Namespace) -> int:
        command = build(args, args.user, args.key or f"cli-{uuid.uuid4().hex}")
        service = _service(args)
        try:
            outcome = service.execute(command)
        finally:
            service.store.close()
        _print_outcome(outcome, args.json)
        return 0 if outcome.ok else 1

    return run


BALANCES = ("status", "limit_fen", "available_fen", "outstanding_fen", "held_fen", "rate_bps")


def _print_outcome(outcome: Outcome, as_json: bool) -> None:
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
        print("  " + _describe(outcome.view))


def _describe(v: PoolView) -> str:
    return (
        f"{v.user} [{v.status.value}] limit {v.limit_fen} fen, available {v.available_fen}, "
        f"outstanding {v.outstanding_fen}, held {v.held_fen}, interest due {v.interest_fen}, "
        f"minimum due {v.min_due_fen}, rate {v.rate_bps} bps, version {v.version}"
    )


def _view(args: argparse.Namespace) -> PoolView | None:
    """The pool of --user, or None after saying on stderr that there is none."""
    service = _service(args)
    try:
        view = service.get(c.check_user(args.user))
    finally:
        service.store.close()
    if view is None:
        print(f"cloud-bridge pool: no pool for user {args.user!r}", file=sys.stderr)
    return view


@_guard
def _show(args: argparse.Namespace) -> int:
    view = _view(args)
    if view is None:
        return 1
    print(
        json.dumps({"result": "ok", **view.to_json()}, indent=1) if args.json else _describe(view)
    )
    return 0


@_guard
def _statement(args: argparse.Namespace) -> int:
    view = _view(args)
    if view is None:
        return 1
    keys = (
        "outstanding_fen",
        "interest_fen",
        "accrued_interest_fen",
        "min_due_fen",
        "due_ms",
        "next_statement_ms",
        "on_time_cycles",
        "rate_bps",
        "limit_fen",
    )
    doc = {k: v for k, v in view.to_json().items() if k in keys}
    if args.json:
        print(json.dumps({"result": "ok", "user": view.user, **doc}, indent=1))
    else:
        print(f"statement of {view.user}")
        for k in keys:
            print(f"  {k:22} {doc.get(k)}")
    return 0


@_guard
def _list(args: argparse.Namespace) -> int:
    service = _service(args)
    try:
        views = service.views()
    finally:
        service.store.close()
    if args.json:
        print(json.dumps([v.to_json() for v in views], indent=1))
    else:
        for view in views:
            print(_describe(view))
    return 0


@_guard
def _events(args: argparse.Namespace) -> int:
    store = open_store(database(args))
    try:
        with store.transaction() as tx:
            rows = pool_repo.events_of(tx, c.check_user(args.user), args.since)
    finally:
        store.close()
    for version, event in rows:
        if args.json:
            print(json.dumps({"version": version, **event.to_json()}))
        else:
            data = ", ".join(f"{k}={v}" for k, v in event.data.items())
            print(f"v{version} {event.at_ms} {event.kind} {data}".rstrip())
    return 0


@_guard
def _audit(args: argparse.Namespace) -> int:
    store = open_store(database(args))
    try:
        with store.transaction() as tx:
            problems = audit(tx)
            pools = pool_repo.count_pools(tx)
    finally:
        store.close()
    if args.json:
        print(json.dumps({"pools": pools, "problems": problems}, indent=1))
    else:
        for line in problems:
            print(line)
        print(f"audited {pools} pools: {'clean' if not problems else f'{len(problems)} problems'}")
    return 1 if problems else 0


@_guard
def _policy(args: argparse.Namespace) -> int:
    print(to_toml(load_policy(args.policy)), end="")
    return 0

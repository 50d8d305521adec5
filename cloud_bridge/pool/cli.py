"""`cloud-bridge pool ...`: operate credit pools from the command line.

Exit status: 0 done, 1 refused by the engine (the result code is printed) or audit problems,
2 bad input, usage or policy, 3 the database failed. Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from cloud_bridge.pool import commands as c
from cloud_bridge.pool.auditor import audit
from cloud_bridge.pool.cli_apply import add_apply
from cloud_bridge.pool.cli_base import (
    FEN_HELP,
    OneLineParser,
    Subcommands,
    amount_option,
    count,
    database,
    describe_view,
    fen,
    guard,
    hold_option,
    limit_option,
    run_command,
    service_of,
    simple,
    usage,
    view_of,
)
from cloud_bridge.pool.policy import load_policy, to_toml
from cloud_bridge.store import open_store, pool_repo

EPILOG = f"""\
Money: {FEN_HELP}. Rates are basis points (1800 = 18.00 % a year). Times are ms.
Every change takes an idempotency --key (default: a fresh one); repeating a command with the
same key returns the first answer and changes nothing. A change is published (the pool's
signed, retained state, by the running bridge) when the bridge's key is in --data (--config
names its TOML if not DATA/bridge.toml); with --db, only if --data is given too.

examples:
  cloud-bridge pool open --user alice --limit 5000000                     # approve 50,000 yuan
  cloud-bridge pool apply --user carol --applicant docs/examples/applicant.json  # automated
  cloud-bridge pool draw --user alice --amount 120000                     # draw 1,200 yuan
  cloud-bridge pool draw --user alice --amount 600000 --installments 12   # 0 % plan, 12 statements
  cloud-bridge pool draw --user alice --amount 80000 --emergency illness  # may use the reserve
  cloud-bridge pool draw --user alice --amount 900000 --emergency illness --up-to  # what's allowed
  cloud-bridge pool hold --user alice --hold order-17 --amount 30000 --ttl-ms 600000
  cloud-bridge pool confirm --user alice --hold order-17
  cloud-bridge pool hold --user alice --hold order-18 --amount 600000 --merchant shop-9
  cloud-bridge pool confirm --user alice --hold order-18    # 6,000 yuan at a shop: a 12 x 0 % plan
  cloud-bridge pool repay --user alice --amount 50000 --key bank-tx-8812
  cloud-bridge pool show --user alice --json
  cloud-bridge pool audit --db postgresql://bridge@db/bridge
  cloud-bridge pool policy > policy.toml                                  # all keys and defaults
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `pool` and its subcommands to the `cloud-bridge` subparsers."""
    pool = subparsers.add_parser(
        "pool",
        help="operate credit pools (open, draw, repay, holds, audit)",
        description=f"Credit pools: one approval, then draw, repay, draw again. {FEN_HELP}.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pool.__class__ = OneLineParser  # made by cloud-bridge's parser; its errors one line too
    pool.set_defaults(run=lambda args: usage(pool))
    sub = Subcommands(
        pool.add_subparsers(dest="pool_command", metavar="SUBCOMMAND", parser_class=OneLineParser)
    )
    for add in SUBCOMMANDS:
        add(sub)
    return pool  # type: ignore[no-any-return]


def _add_open(sub: Subcommands) -> None:
    p = sub.add("open", "approve a credit line (or reopen a closed one)")
    limit_option(p, "the credit limit, fen")
    p.add_argument("--rate-bps", type=count, help="annual rate, basis points (default: policy)")
    p.set_defaults(
        run=run_command(
            lambda a, u, k: c.OpenPool(user=u, key=k, limit_fen=a.limit_fen, rate_bps=a.rate_bps)
        )
    )


def _add_draw(sub: Subcommands) -> None:
    p = sub.add("draw", "draw money now")
    amount_option(p)
    p.add_argument(
        "--installments", type=count, default=0, help="periods of a 0 %% plan (policy: 12)"
    )
    p.add_argument("--emergency", choices=[e.value for e in c.Emergency], help="an emergency draw")
    p.add_argument("--up-to", action="store_true", help="take as much of --amount as allowed")
    p.set_defaults(
        run=run_command(
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


def _add_repay(sub: Subcommands) -> None:
    p = sub.add("repay", "repay: billed interest, accrued interest, principal, then installments")
    amount_option(p)
    p.set_defaults(run=run_command(lambda a, u, k: c.Repay(user=u, key=k, amount_fen=a.amount_fen)))


def _add_hold(sub: Subcommands) -> None:
    p = sub.add("hold", "reserve credit until confirmed, voided or expired")
    hold_option(p, required=False)
    amount_option(p)
    p.add_argument("--ttl-ms", type=fen, help="lifetime in ms (default: policy)")
    p.add_argument(
        "--merchant",
        default="",
        help="the shop's id: a large purchase at an eligible shop becomes a 0 %% plan",
    )
    p.set_defaults(
        run=run_command(
            lambda a, u, k: c.PlaceHold(
                user=u,
                key=k,
                hold_id=a.hold_id or k,
                amount_fen=a.amount_fen,
                ttl_ms=a.ttl_ms,
                merchant=a.merchant,
            )
        )
    )


def _add_confirm(sub: Subcommands) -> None:
    p = sub.add("confirm", "turn a hold into a draw (all of it, or --amount)")
    hold_option(p, required=True)
    amount_option(p, required=False, help_text="confirm less than held (fen); the rest is released")
    p.add_argument(
        "--opt-out",
        action="store_true",
        help="no automatic installment plan: the purchase is revolving credit",
    )
    p.set_defaults(
        run=run_command(
            lambda a, u, k: c.ConfirmHold(
                user=u, key=k, hold_id=a.hold_id, amount_fen=a.amount_fen, opt_out=a.opt_out
            )
        )
    )


def _add_void(sub: Subcommands) -> None:
    p = sub.add("void", "void a hold (release it unused)", aliases=("release",))
    hold_option(p, required=True)
    p.set_defaults(run=run_command(lambda a, u, k: c.ReleaseHold(user=u, key=k, hold_id=a.hold_id)))


def _add_freeze(sub: Subcommands) -> None:
    p = sub.add("freeze", "stop draws and holds (repayments still work)")
    p.add_argument("--reason", default="risk", help="a reason code of [a-z0-9_] (default risk)")
    p.set_defaults(run=run_command(lambda a, u, k: c.Freeze(user=u, key=k, reason=a.reason)))


def _add_simple(sub: Subcommands) -> None:
    """The commands that take nothing but the pool and a key."""
    for name, help_text, kind in (
        ("unfreeze", "lift a freeze", c.Unfreeze),
        ("close", "close a pool that owes nothing", c.ClosePool),
        ("health", "a health goal was met: boost the limit one step", c.HealthGoalMet),
        ("tick", "expire holds and close statements due by now", c.Tick),
    ):
        sub.add(name, help_text).set_defaults(run=run_command(simple(kind)))


def _add_set_limit(sub: Subcommands) -> None:
    p = sub.add("set-limit", "operator limit change (not below what is used or held)")
    limit_option(p, "the new limit, fen")
    p.set_defaults(
        run=run_command(lambda a, u, k: c.SetLimit(user=u, key=k, limit_fen=a.limit_fen))
    )


def _add_mileage(sub: Subcommands) -> None:
    p = sub.add("mileage", "report EV kilometres in the last month (picks the rate tier)")
    p.add_argument("--km", type=count, required=True, help="kilometres in the last month")
    p.set_defaults(
        run=run_command(lambda a, u, k: c.ReportMileage(user=u, key=k, km_per_month=a.km))
    )


def _add_turnover(sub: Subcommands) -> None:
    p = sub.add("turnover", "a merchant's turnover of one day (its limit follows; reviewed weekly)")
    p.add_argument("--day", type=count, required=True, help="the day: days since 1970-01-01 UTC")
    p.add_argument(  # not `fen`: a day with no sales is 0
        "--amount", dest="amount_fen", type=count, required=True, help="the day's turnover, fen"
    )
    p.set_defaults(
        run=run_command(
            lambda a, u, k: c.ReportTurnover(user=u, key=k, day=a.day, turnover_fen=a.amount_fen)
        )
    )


def _add_life_stage(sub: Subcommands) -> None:
    p = sub.add("life-stage", "a life-stage event adjusts the limit")
    p.add_argument("--event", required=True, choices=[e.value for e in c.LifeEvent])
    p.set_defaults(run=run_command(lambda a, u, k: c.LifeStage(user=u, key=k, event=a.event)))


def _add_reads(sub: Subcommands) -> None:
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


SUBCOMMANDS: tuple[Callable[[Subcommands], None], ...] = (
    _add_open,
    add_apply,
    _add_draw,
    _add_repay,
    _add_hold,
    _add_confirm,
    _add_void,
    _add_freeze,
    _add_simple,
    _add_set_limit,
    _add_mileage,
    _add_turnover,
    _add_life_stage,
    _add_reads,
)
"""Each adds its subcommands' parsers, in the order `--help` lists them."""


@guard
def _show(args: argparse.Namespace) -> int:
    view = view_of(args)
    if view is None:
        return 1
    print(
        json.dumps({"result": "ok", **view.to_json()}, indent=1)
        if args.json
        else describe_view(view)
    )
    return 0


@guard
def _statement(args: argparse.Namespace) -> int:
    view = view_of(args)
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


@guard
def _list(args: argparse.Namespace) -> int:
    service = service_of(args)
    try:
        views = service.views()
    finally:
        service.store.close()
    if args.json:
        print(json.dumps([v.to_json() for v in views], indent=1))
    else:
        for view in views:
            print(describe_view(view))
    return 0


@guard
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


@guard
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


@guard
def _policy(args: argparse.Namespace) -> int:
    print(to_toml(load_policy(args.policy)), end="")
    return 0

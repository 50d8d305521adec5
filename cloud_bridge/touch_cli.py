"""`cloud-bridge touch show|reset USER`: an operator's view of a user's step-up touch state and
the way out of a touch lock (cloud_bridge.risk.touch; docs/operations.md, "Touch behaviour").

After `[risk_signals] touch_max_refusals` touch refusals in a row a user's step-ups are refused
at once (`touch_locked`) until an operator, having checked with the user, resets the count;
`--template` also forgets the user's touch template (a new phone, a new grip: the next
`touch_enrol` confirmations enrol it again, trusted on first use)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from cloud_bridge.config import BridgeConfig
from cloud_bridge.errors import BridgeError
from cloud_bridge.risk import touch

RESET_EXAMPLE = "cloud-bridge touch reset alice --data var/bridge"


def add_parsers(
    sub: Any, common: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]
) -> None:
    tc = sub.add_parser(
        "touch",
        help="show or reset a user's step-up touch state (template, refusals, lock)",
        description="A user's touch template is enrolled from their first step-up "
        "confirmations; touch refusals in a row lock their step-ups until reset.",
    )
    tsub = tc.add_subparsers(dest="touch_command", metavar="ACTION", required=True)
    show = common(tsub.add_parser("show", help="a user's kept confirmations, refusals, lock"))
    show.add_argument("user")
    show.add_argument("--json", action="store_true")
    reset = common(
        tsub.add_parser(
            "reset",
            help="clear a user's touch refusals (and with --template their template)",
            description="Clear the user's touch refusals in a row, which ends a touch lock; "
            "with --template also forget their template, so that their next confirmations "
            "enrol it again. Run it once the user is known to be the one confirming.",
            epilog=f"example: {RESET_EXAMPLE}",
        )
    )
    reset.add_argument("user")
    reset.add_argument("--template", action="store_true", help="also forget the template")
    reset.add_argument("--json", action="store_true")


def reset_memory(memory: touch.Memory, template: bool) -> touch.Memory:
    """The touch memory after an operator's reset: no refusals, and no template if asked."""
    return touch.Memory() if template else replace(memory, refusals=0)


def state(memory: touch.Memory, policy: touch.Policy) -> dict[str, Any]:
    return {
        "confirmations": len(memory.confirmations),
        "enrolled": touch.template(memory, policy) is not None,
        "refusals": memory.refusals,
        "locked": touch.locked(memory, policy),
    }


def cmd_touch(args: argparse.Namespace, cfg: BridgeConfig, now_ms: int) -> int:
    from cloud_bridge.store import ingest_repo, open_store

    policy = cfg.risk_signals.touch
    with open_store(cfg.store_url) as store, store.transaction() as tx:
        before = ingest_repo.user_memory(tx, args.user)
        if before is None:
            raise BridgeError(f"the bridge keeps no risk memory of user {args.user!r}")
        doc: dict[str, Any] = {"user": args.user, **state(before.touch, policy)}
        if args.touch_command == "reset":
            after = replace(before, touch=reset_memory(before.touch, args.template))
            ingest_repo.save_users(tx, {args.user: after}, now_ms)
            doc = {"user": args.user, "before": doc, **state(after.touch, policy)}
    if args.json:
        print(json.dumps(doc))
    elif args.touch_command == "reset":
        what = "refusals and template" if args.template else "refusals"
        print(f"reset the touch {what} of {args.user}: {_line(doc)}")
    else:
        print(f"{args.user}: {_line(doc)}")
    return 0


def _line(doc: dict[str, Any]) -> str:
    return (
        f"{doc['confirmations']} confirmations kept, "
        f"{'enrolled' if doc['enrolled'] else 'enrolling'}, {doc['refusals']} refusals in a "
        f"row{', LOCKED' if doc['locked'] else ''}"
    )

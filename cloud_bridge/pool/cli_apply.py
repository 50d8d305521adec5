"""`cloud-bridge pool apply`: automated approval of an application (docs/credit-pool.md).

The thin I/O around `applying.application` (which a phone's signed application runs too): read
the applicant file and the scorecard, read the user's device signals from the store (registry
and pool history), decide, and open the pool with the approved limit and rate. Exit status 0
approved and opened, 1 referred, declined or the opening refused (a pool already open), 2 bad
input, 3 the database failed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cloud_bridge.pool import commands as c
from cloud_bridge.pool.applying import application, device_signals
from cloud_bridge.pool.approval import Outcome
from cloud_bridge.pool.cli_base import (
    Subcommands,
    database,
    execute_published,
    guard,
    print_outcome,
)
from cloud_bridge.pool.errors import InvalidApplicant
from cloud_bridge.pool.policy import load_policy
from cloud_bridge.pool.scorecard import DEFAULT_SCORECARD, load_scorecard
from cloud_bridge.pool.service import PoolService
from cloud_bridge.store import open_store


def add_apply(sub: Subcommands) -> None:
    p = sub.add("apply", "decide an application (approve, refer, decline) and open the pool")
    p.add_argument(
        "--applicant",
        type=Path,
        required=True,
        help="JSON object of the scorecard's attributes (docs/scorecard.md)",
    )
    p.add_argument(
        "--scorecard",
        type=Path,
        default=DEFAULT_SCORECARD,
        help="scorecard artifact (default: models/scorecard-v1.json)",
    )
    p.set_defaults(run=_apply)


def read_applicant(path: Path) -> dict[str, Any]:
    """The applicant file: a JSON object; InvalidApplicant if unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidApplicant(f"cannot read applicant file {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise InvalidApplicant(f"applicant file {path} is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidApplicant(f"applicant file {path} must hold a JSON object of attributes")
    return data


@guard
def _apply(args: argparse.Namespace) -> int:
    user = c.check_user(args.user)
    applicant = read_applicant(args.applicant)
    card = load_scorecard(args.scorecard)
    policy = load_policy(args.policy)
    store = open_store(database(args))
    try:
        with store.transaction() as tx:
            signals = device_signals(tx, user)
        service = PoolService(store, policy)
        decision = application(applicant, signals, card, service.clock(), policy)
        outcome = None
        if decision.outcome is Outcome.APPROVE:
            command = c.OpenPool(
                user=user,
                key=args.key or f"apply-{user}",
                limit_fen=decision.limit_fen,
                rate_bps=decision.rate_bps,
            )
            outcome = execute_published(args, service, command)
    finally:
        store.close()
    if args.json:
        doc: dict[str, Any] = {"user": user, "decision": decision.to_json()}
        doc["result"] = None if outcome is None else outcome.result.value
        doc["outcome"] = None if outcome is None else outcome.to_json()
        print(json.dumps(doc, indent=1))
    else:
        d = decision
        terms = f" limit {d.limit_fen} fen, rate {d.rate_bps} bps" if d.limit_fen else ""
        print(
            f"{d.outcome.value}: {user}{terms} (score {d.score_points}, PD {d.pd_bps} bps,"
            f" {d.adjusted_pd_bps} bps after device trust)"
        )
        print(f"  reasons: {', '.join(d.reasons)}")
        if outcome is not None:
            print_outcome(outcome, False)
    return 0 if outcome is not None and outcome.ok else 1

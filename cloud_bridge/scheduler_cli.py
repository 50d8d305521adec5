"""`cloud-bridge scheduler`: the process that runs scheduled pool life (cloud_bridge.scheduler).

Safe to run beside any number of bridges and other schedulers of the same database: each round
claims its due pools (PostgreSQL row locks with SKIP LOCKED), and a killed scheduler's work is
done by the next round. What a round changes goes into the outbox signed with the bridge key
from --data, as operator commands do (sender `<bridge id>-cli`), and the running bridge
publishes it: the PoolEvents and the retained PoolState of every pool it changed.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cloud_bridge.pool.cli_base import guard, operator_outputs, service_of
from cloud_bridge.pool.service import Outcome
from cloud_bridge.scheduler import BATCH, Round, Scheduler
from cloud_bridge.store.base import Transaction

EXAMPLES = """examples:
  cloud-bridge scheduler --data var/bridge --once     # one round, print what it did, exit
  cloud-bridge scheduler --data var/bridge --interval-s 5   # run until SIGTERM
"""


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "scheduler",
        help="close statements, expire holds and review limits on time (run beside bridges)",
        description="Run scheduled pool life: every pool whose next statement, hold expiry or "
        "merchant review has come gets a tick, exactly once however many schedulers and "
        "bridges run on the same database; the changes are published by the running bridge.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help="bridge data directory (default var/bridge): its database, its key (with which "
        "the changes are signed for publishing) and bridge.toml",
    )
    p.add_argument(
        "--config", type=Path, default=None, help="bridge.toml (default DATA/bridge.toml)"
    )
    p.add_argument("--db", default=None, help="SQLite path or postgresql:// DSN (default --data's)")
    p.add_argument("--policy", metavar="FILE", help="credit policy TOML (default: built in)")
    p.add_argument(
        "--no-publish",
        action="store_true",
        help="change the pools only, publishing no pool event or state (without it, the "
        "scheduler needs the bridge key in --data and exits 2 when there is none)",
    )
    p.add_argument("--interval-s", type=float, default=1.0, help="seconds between rounds (1.0)")
    p.add_argument("--batch", type=int, default=BATCH, help=f"pools a round claims ({BATCH})")
    p.add_argument("--once", action="store_true", help="one round, print what it did, exit")
    p.add_argument("--json", action="store_true", help="with --once: print JSON")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(run=run)


@guard
def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.batch < 1 or args.interval_s <= 0:
        print("cloud-bridge scheduler: --batch and --interval-s must be positive", file=sys.stderr)
        return 2
    service = service_of(args)
    try:
        out = operator_outputs(args, service.store)
        if out is None:
            scheduler = Scheduler(service, batch=args.batch)
        else:
            fleet, outputs = out

            def publish(tx: Transaction, outcomes: Sequence[Outcome]) -> int:
                pending = [p for o in outcomes for p in outputs.pool_change(tx, fleet, o)]
                outputs.seal_and_store(tx, pending)
                return len(pending)

            scheduler = Scheduler(service, publish, args.batch, outputs.publisher.invalidate)
        if args.once:
            done = scheduler.run_once()
            _print(done, args.json)
            return 0
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        scheduler.run(stop, args.interval_s)
        return 0
    finally:
        service.store.close()


def _print(done: Round, as_json: bool) -> None:
    doc = {
        "claimed": done.claimed,
        "changed": done.changed,
        "events": done.events,
        "outputs": done.outputs,
    }
    if as_json:
        print(json.dumps(doc))
    else:
        print(" ".join(f"{k} {v}" for k, v in doc.items()))

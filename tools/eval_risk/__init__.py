"""Evaluations of the risk signals: `python -m tools.eval_risk SIGNAL --json` (docs/risk.md).

Each `sig_<name>.py` exposes `evaluate(seed, quick) -> dict` and a `main` made by `signal_main`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

Evaluate = Callable[[int, bool], dict[str, Any]]


def signal_main(
    name: str,
    doc: str | None,
    evaluate: Evaluate,
    argv: list[str] | None,
    *,
    quick_help: str,
    seed_help: str = "the simulation's seed",
    seeds: int | None = None,
    missing: type[Exception] | None = None,
) -> int:
    """The command line of one signal's evaluation: `--seed N`, `--quick`, `--json`; the result
    printed as JSON (indented with --json); exit 2 with the reason when `missing` is raised
    (data the evaluation needs is not installed)."""
    ap = argparse.ArgumentParser(
        prog=f"python -m tools.eval_risk.{name}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--seed", type=int, default=0, help=seed_help)
    ap.add_argument("--quick", action="store_true", help=quick_help)
    ap.add_argument("--json", action="store_true", help="print the result as indented JSON")
    args = ap.parse_args(argv)
    if seeds is not None and not 0 <= args.seed < seeds:
        ap.error(f"--seed must be 0 to {seeds - 1}")
    try:
        result = evaluate(args.seed, args.quick)
    except Exception as exc:
        if missing is None or not isinstance(exc, missing):
            raise
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=1 if args.json else None))
    return 0

"""Measure one risk signal against its goal: `python -m tools.eval_risk SIGNAL [--seed N]
[--quick] [--json]`.

Every signal is a module `tools.eval_risk.sig_<SIGNAL>` exposing
`evaluate(seed: int, quick: bool) -> dict`; the signals are found by file name, so adding a
module is all it takes. The result is printed as JSON (`--json`, one document) or as
`key: value` lines. The exit status is 0 when the result says `"met": true` or says nothing about
it, 1 when a goal is missed, 2 on a usage error.

Any other argument goes to the signal module's own `main(argv)` instead, when it has one; e.g.
`python -m tools.eval_risk calibration --write` rewrites the model's calibration file.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, cast

PREFIX = "sig_"
HERE = Path(__file__).resolve().parent


class Signal(Protocol):
    def evaluate(self, seed: int, quick: bool) -> dict[str, Any]: ...


def available(root: Path = HERE) -> list[str]:
    """The signals with a module here, by name (sig_<name>.py), sorted."""
    return sorted(p.stem[len(PREFIX) :] for p in root.glob(f"{PREFIX}*.py"))


def load(name: str, root: Path = HERE) -> Signal:
    """The module of one signal; ValueError naming the available ones if there is none."""
    names = available(root)
    if name not in names:
        raise ValueError(f"no signal {name!r}; available: {', '.join(names) or 'none'}")
    module = importlib.import_module(f"{__package__ or 'tools.eval_risk'}.{PREFIX}{name}")
    if not callable(getattr(module, "evaluate", None)):
        raise ValueError(f"{module.__name__} has no evaluate(seed, quick)")
    return cast(Signal, module)


def render(result: Mapping[str, Any], as_json: bool) -> str:
    if as_json:
        return json.dumps(result, indent=1, sort_keys=True)
    return "\n".join(f"{k}: {json.dumps(v, sort_keys=True)}" for k, v in result.items())


def _parser(names: list[str]) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m tools.eval_risk",
        description=__doc__,
        epilog=f"available signals: {', '.join(names) or 'none'}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("signal", choices=names, metavar="SIGNAL", help=" | ".join(names))
    ap.add_argument("--seed", type=int, default=0, help="seed of the simulated data (0)")
    ap.add_argument("--quick", action="store_true", help="a smaller run (tests, smoke checks)")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    return ap


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    ap = _parser(available())
    args, rest = ap.parse_known_args(args_in)
    module = load(args.signal)
    if rest:
        own = getattr(module, "main", None)
        if not callable(own):
            ap.error(f"unrecognized arguments for {args.signal}: {' '.join(rest)}")
        return int(own([a for a in args_in if a not in (args.signal, "--json")]) or 0)
    result = module.evaluate(args.seed, args.quick)
    print(render(result, args.json))
    return 1 if result.get("met") is False else 0


if __name__ == "__main__":
    sys.exit(main())

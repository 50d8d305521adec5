"""cloud-bridge: the command line of the cloud bridge."""

from __future__ import annotations

import argparse
import sys

from cloud_bridge.pool.cli import add_parser as add_pool_parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cloud-bridge",
        description="Cloud bridge: verifies signed device messages, keeps a durable event log, "
        "drives the credit-pool engine and publishes signed decisions and pool state.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_pool_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(args.run(args))  # each subcommand sets `run`


if __name__ == "__main__":
    sys.exit(main())

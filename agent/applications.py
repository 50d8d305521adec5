"""A credit application from the phone: `edge-agent apply` queues it, the running agent sends it.

`edge-agent apply --config agent.toml --applicant FILE.json` checks the file (a JSON object of
the scorecard's attributes, integers or category texts: the same file `cloud-bridge pool apply
--applicant` reads, docs/scorecard.md) and drops it in the agent's application spool. The
running agent takes it at its next poll and stores a `messages.Application` in the outbox in one
transaction with the spool's bookkeeping, so it is signed, numbered, sent and resent until acked
like a trigger. Which attributes and categories are valid is the scorecard's to say: the bridge
scores the application and refuses what the scorecard does not know (`bad_field`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.errors import AgentError
from protocol import messages as m
from protocol.errors import ProtocolError
from protocol.names import PHONE_KIND

log = logging.getLogger(__name__)

SPOOL = "applications"
"""The spool's directory under the agent's data_dir."""
DONE_KEY = "applications_done"
"""The outbox's key-value entry naming the spool files already stored (removed after a crash)."""
PRIORITY_APPLICATION = 50
"""Ahead of periodic reports, behind command replies."""


def checked(applicant: Any, where: str) -> dict[str, int | str]:
    """The applicant map as the wire takes it (ids as names, integer or text values), or an
    AgentError that says what is wrong."""
    if not isinstance(applicant, dict):
        raise AgentError(f"{where} must hold a JSON object of the scorecard's attributes")
    try:
        return m.Application(sender="x", seq=0, boot=0, ts_ms=0, applicant=applicant).applicant
    except ProtocolError as exc:
        raise AgentError(
            f"{where}: {exc.detail}; give integers (no decimals) or category texts, e.g. "
            '{"duration_in_month": 12, "purpose": "A43"}'
        ) from exc


def read_applicant(path: Path) -> dict[str, int | str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AgentError(f"cannot read applicant file {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise AgentError(f"applicant file {path} is not JSON: {exc}") from exc
    return checked(data, f"applicant file {path}")


class ApplicationSpool:
    """Applications waiting for the running agent, one file each, written whole and renamed
    into place (a half-written one is never read)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def queue(self, applicant: Mapping[str, int | str]) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns()}-{os.getpid()}.json"
        tmp = self.directory / f".{name}.tmp"
        tmp.write_text(json.dumps(dict(applicant), sort_keys=True), encoding="utf-8")
        final = self.directory / name
        os.replace(tmp, final)
        return final

    def take(self) -> list[tuple[Path, dict[str, int | str]]]:
        """The queued applications, oldest first, left in place until `remove`. An unreadable
        file is dropped with a warning."""
        if not self.directory.is_dir():
            return []
        out = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                out.append((path, read_applicant(path)))
            except AgentError as exc:
                log.warning("dropping application %s: %s", path.name, exc)
                with contextlib.suppress(OSError):
                    path.unlink()
        return out

    def remove(self, names: list[str]) -> None:
        for name in names:
            with contextlib.suppress(OSError):
                (self.directory / Path(name).name).unlink()


def add_parser(sub: Any) -> None:
    a = sub.add_parser(
        "apply",
        help="apply for credit from this phone (a signed application)",
        description="Queue a credit application for the running agent: it is signed with the "
        "device key and sent through the outbox; the bridge scores it, opens the pool if "
        "approved and publishes the signed decision on cp/v1/{fleet}/pool/{user}/decision. "
        "Only an enrolled phone may apply.",
        epilog="Example (docs/scorecard.md, Applying from the phone): edge-agent apply "
        "--config phone/agent.toml "
        "--applicant docs/examples/applicant.json",
    )
    a.add_argument("--config", required=True, type=Path, help="agent.toml")
    a.add_argument(
        "--applicant",
        required=True,
        type=Path,
        help="JSON object of the scorecard's attributes (docs/scorecard.md)",
    )


def apply(args: argparse.Namespace) -> int:
    from agent import config as config_mod

    cfg = config_mod.load(args.config)
    if cfg.kind != PHONE_KIND:
        raise AgentError(
            f"{args.config}: a {cfg.kind} does not apply for credit; run this with the "
            "agent.toml of the user's enrolled phone"
        )
    applicant = read_applicant(args.applicant)
    path = ApplicationSpool(cfg.data_dir / SPOOL).queue(applicant)
    print(f"application queued ({path.name}); the running agent signs and sends it next")
    return 0

"""Expiring commands held until the wall clock is trusted (agent.timebase), kept durably.

The link records a command as seen (its replay window, persisted) before the main thread looks
at it, so a held command kept only in memory would be lost by a restart and never come again.
The held list therefore lives in the outbox's key/value table, written before any command of
the same pass is applied, and is evaluated again after a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from agent import command_gate
from agent.outbox import Outbox
from protocol import messages as m
from protocol.errors import ProtocolError

log = logging.getLogger(__name__)

HELD_KEY = "held_commands"


def triage(
    waiting: Sequence[m.Command], now_ms: int, trusted: bool
) -> tuple[list[m.Command], list[m.Command], list[tuple[str, m.Command]]]:
    """(to apply, to hold, refused with their reason), in the order given."""
    apply: list[m.Command] = []
    hold: list[m.Command] = []
    refused: list[tuple[str, m.Command]] = []
    for cmd in waiting:
        verdict = command_gate.gate(cmd.expires_ms, False, now_ms, trusted)
        if verdict == command_gate.HOLD:
            hold.append(cmd)
        elif verdict == command_gate.APPLY:
            apply.append(cmd)
        else:
            refused.append((verdict, cmd))
    return apply, hold, refused


def save(outbox: Outbox, held: Sequence[m.Command]) -> None:
    outbox.put_json(HELD_KEY, [m.encode(cmd).hex() for cmd in held])


def load(outbox: Outbox) -> list[m.Command]:
    """The held commands persisted before a restart; an unreadable entry is logged and left."""
    raw = outbox.get_json(HELD_KEY, [])
    out: list[m.Command] = []
    for item in raw if isinstance(raw, list) else []:
        try:
            out.append(m.decode_as(bytes.fromhex(str(item)), m.Command))
        except (ValueError, ProtocolError) as exc:
            log.warning("held command not restored (%s): %.80s", exc, item)
    return out

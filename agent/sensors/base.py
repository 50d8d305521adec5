"""The interface every sensor source implements, and the explicit-event spool they share."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Protocol

from agent.features import Capture
from agent.triggers import Event, Reading
from protocol.messages import EMERGENCY_KINDS

log = logging.getLogger(__name__)


class Source(Protocol):
    """A device's sensors. `poll` is cheap and runs every second; `capture` reads an IMU
    window at rest (plus the session's taps) for the fingerprint, once per report."""

    def poll(self, now_ms: int) -> Reading: ...

    def capture(self) -> Capture: ...

    def close(self) -> None: ...


class EventSpool:
    """Explicit events (an emergency raised in the device's UI) arrive as files in a spool
    directory: `edge-agent emergency` writes one, the running agent consumes it. A file is
    written whole and renamed into place, so a half-written event is never read."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def raise_emergency(self, emergency: str, amount_fen: int = 0) -> Path:
        if emergency not in EMERGENCY_KINDS:
            raise ValueError(f"emergency must be one of {', '.join(sorted(EMERGENCY_KINDS))}")
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns()}-{os.getpid()}.json"
        tmp = self.directory / f".{name}.tmp"
        tmp.write_text(json.dumps({"emergency": emergency, "amount_fen": int(amount_fen)}))
        final = self.directory / name
        os.replace(tmp, final)
        return final

    def take(self) -> list[tuple[Path, Event]]:
        """The queued events, oldest first, left in place until `remove` (after the caller has
        committed what they caused). Unreadable files are dropped with a warning."""
        if not self.directory.is_dir():
            return []
        out = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                data = json.loads(path.read_text())
                event = Event(str(data["emergency"]), "explicit", int(data.get("amount_fen", 0)))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring unreadable event file %s: %s", path, exc)
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            if event.emergency in EMERGENCY_KINDS:
                out.append((path, event))
        return out

    def remove(self, names: list[str]) -> None:
        for name in names:
            with contextlib.suppress(OSError):
                (self.directory / Path(name).name).unlink()

"""Remote diagnostics (issue 18 item 5): the agent's recent log lines, its last crash, and the
answer to a `diag` command cut to size.

- `LogRing`: a logging handler keeping the newest RING_LINES formatted records in memory.
- The last crash, kept across restarts in DATA/crash.json: `record_crash` writes an unhandled
  exception; `start_run` finds an unclean end of the previous run (its DATA/running.json marker
  still there: SIGKILL, OOM kill, power cut) and records that; `end_run` removes the marker on a
  clean stop.
- `fit` (pure): the Diag message with as many of the newest log lines as fit in
  MAX_DIAG_BYTES (protocol.messages), dropping the oldest first.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from agent.jsonfile import read_json, write_json_atomic
from protocol import cbor
from protocol import messages as m

RING_LINES = 200
LINE_CHARS = 200
CRASH_FILE, RUN_MARKER = "crash.json", "running.json"
UNCLEAN = "unclean_exit: the previous run ended without stopping (SIGKILL, OOM or power loss)"


class LogRing(logging.Handler):
    """The newest log records, formatted, in a bounded ring (thread-safe)."""

    def __init__(self, lines: int = RING_LINES) -> None:
        super().__init__()
        self._lines: collections.deque[str] = collections.deque(maxlen=lines)
        self._ring_lock = threading.Lock()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record).splitlines()[0][:LINE_CHARS] if record.msg else ""
        except Exception:  # a log record that cannot be formatted must not break logging
            return
        with self._ring_lock:
            self._lines.append(line)

    def tail(self, n: int) -> list[str]:
        with self._ring_lock:
            return list(self._lines)[-n:] if n > 0 else []


RING = LogRing()
"""The process's ring, installed on the root logger by `edge-agent run`."""


def record_crash(data_dir: Path, reason: str, now_ms: int) -> None:
    write_json_atomic(data_dir / CRASH_FILE, {"reason": reason[:200], "ms": now_ms})


def last_crash(data_dir: Path) -> tuple[str, int]:
    """(reason, when in ms) of the last recorded crash; ("", 0) if none."""
    doc = read_json(data_dir / CRASH_FILE)
    if not isinstance(doc, dict):
        return "", 0
    ms = doc.get("ms")
    return str(doc.get("reason", ""))[:200], ms if isinstance(ms, int) else 0


def start_run(data_dir: Path, now_ms: int) -> bool:
    """Mark this run as started; True (and the crash recorded) if the previous one never
    ended cleanly. An exception recorded after the marker was written is kept as it is."""
    marker = read_json(data_dir / RUN_MARKER)
    unclean = isinstance(marker, dict)
    if unclean:
        started = marker.get("started_ms", 0) if isinstance(marker, dict) else 0
        _reason, crashed_ms = last_crash(data_dir)
        if not (isinstance(started, int) and crashed_ms >= started):
            record_crash(data_dir, UNCLEAN, now_ms)
    write_json_atomic(data_dir / RUN_MARKER, {"pid": os.getpid(), "started_ms": now_ms})
    return unclean


def end_run(data_dir: Path) -> None:
    (data_dir / RUN_MARKER).unlink(missing_ok=True)


def fit(diag: m.Diag, lines: Sequence[str], limit: int = m.MAX_DIAG_BYTES) -> m.Diag:
    """`diag` with the newest of `lines` that fit in `limit` encoded bytes (oldest dropped
    first); the figures and the crash always stay."""
    lines = [line[:LINE_CHARS] for line in lines][-RING_LINES:]
    lo, hi = 0, len(lines)  # the fewest lines dropped such that it fits: binary search
    while lo < hi:
        mid = (lo + hi) // 2
        if _size(replace(diag, log=tuple(lines[mid:]))) <= limit:
            hi = mid
        else:
            lo = mid + 1
    return replace(diag, log=tuple(lines[lo:]))


def _size(message: m.Message) -> int:
    """Encoded size without encode's 4 KiB refusal (a candidate may be far over it)."""
    return len(cbor.dumps(message.to_map()))

"""Warnings about dropped inbound messages, at most one per reason per interval.

Whoever can publish on the broker decides how many messages the agent's link and the bridge
drop, so a warning per message would let them fill the log. `Throttle` lets the first warning
of each reason through, holds back the others of that reason for `interval_ms`, and counts
them: the next warning that gets through says how many were held back. Counting every drop
stays the caller's business (status, metrics); this only decides about log lines.

    throttle = Throttle()
    throttle.warn(log, "bad_signature", clock.mono_ms(), "link: dropped message on %s: %s", t, e)

The decision (`admit`) is a function of the reason and a monotonic time in ms passed in; `warn`
carries it out on a logger. `reason` must come from a fixed set (a `protocol.errors.Reason`, a
code of the caller's own), never from the message itself, so the table stays small. Safe to
share between threads.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

INTERVAL_MS = 60_000
"""Default: at most one warning per reason a minute."""


@dataclass(frozen=True, slots=True)
class Admitted:
    """A warning that may be logged now."""

    held_back: int  # warnings of the same reason not logged since the last one that was
    since_ms: int  # when that last one was logged (monotonic ms); equal to now if none was


class Throttle:
    """At most one warning per reason per `interval_ms`; the rest are counted (thread-safe)."""

    def __init__(self, interval_ms: int = INTERVAL_MS) -> None:
        if interval_ms < 0:
            raise ValueError(f"interval_ms must be >= 0, not {interval_ms}")
        self.interval_ms = interval_ms
        self._last_ms: dict[str, int] = {}  # reason -> when its last warning was logged
        self._held: dict[str, int] = {}  # reason -> warnings held back since then
        self._lock = threading.Lock()

    def admit(self, reason: str, now_ms: int) -> Admitted | None:
        """Admitted when a warning of `reason` may be logged at `now_ms`, None when it is held
        back (and counted for the next one that is admitted)."""
        with self._lock:
            last = self._last_ms.get(reason)
            if last is not None and now_ms - last < self.interval_ms:
                self._held[reason] = self._held.get(reason, 0) + 1
                return None
            self._last_ms[reason] = now_ms
            return Admitted(self._held.pop(reason, 0), now_ms if last is None else last)

    def warn(
        self,
        logger: logging.Logger,
        reason: str,
        now_ms: int,
        msg: str,
        *args: object,
        level: int = logging.WARNING,
        exc_info: bool = False,
    ) -> bool:
        """Log `msg % args` at `level` if `admit` lets it through, with the number of warnings
        of this reason held back since the last one; whether it was logged."""
        admitted = self.admit(reason, now_ms)
        if admitted is None:
            return False
        if admitted.held_back:
            msg += " (%d more %s in the last %d s not logged)"
            seconds = (now_ms - admitted.since_ms) // 1000
            args = (*args, admitted.held_back, reason, seconds)
        logger.log(level, msg, *args, exc_info=exc_info)
        return True

"""The agent's wall clock without trusting the hardware clock (I/O around agent.timebase).

Reads whether the kernel's clock is NTP-synchronised (adjtimex: anything but TIME_ERROR), takes
the bridge's time from the ts_ms of its signed acks until then, and persists the time floor in
the outbox's key/value table at most every timebase.FLOOR_EVERY_MS (from the main thread).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from collections.abc import Callable
from typing import Any

from agent import timebase

FLOOR_KEY = "time_floor"
NTP_CHECK_MS = 10_000
_TIME_ERROR = 5  # adjtimex(2): the clock is not synchronised


def ntp_synced() -> bool:
    """Whether the kernel says an NTP client keeps the clock synchronised (Linux adjtimex with
    no change requested); False where that cannot be asked."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        buf = ctypes.create_string_buffer(512)  # struct timex, zeroed: modes 0 = read only
        state = int(libc.adjtimex(buf))
    except (OSError, AttributeError):
        return False
    return state >= 0 and state != _TIME_ERROR


class TimeKeeper:
    """Thread-safe: the link thread reports bridge times, every thread reads the wall clock."""

    def __init__(
        self,
        outbox: Any,
        raw_ms: Callable[[], int],
        mono_ms: Callable[[], int],
        synced: Callable[[], bool] = ntp_synced,
    ) -> None:
        floor = outbox.get_json(FLOOR_KEY, 0)
        self._outbox, self._raw, self._mono, self._synced = outbox, raw_ms, mono_ms, synced
        self._state = timebase.start(floor if isinstance(floor, int) else 0)
        self._lock = threading.Lock()
        self._ntp_due = 0
        self.step()

    def wall_ms(self) -> int:
        return timebase.wall(self._state, self._raw())

    @property
    def quality(self) -> int:
        return self._state[timebase.QUALITY]

    def trusted(self) -> bool:
        return timebase.trusted(self._state)

    def on_bridge_time(self, bridge_ms: int) -> None:
        with self._lock:
            self._state = timebase.on_bridge_time(self._state, bridge_ms, self._raw())

    def step(self) -> None:
        """Main thread, once a loop: ask about NTP now and then; persist the floor when due."""
        now = self._mono()
        if now >= self._ntp_due:
            self._ntp_due = now + NTP_CHECK_MS
            synced = self._synced()
            with self._lock:
                self._state = timebase.on_ntp(self._state, synced)
        due = timebase.floor_due(self._state, self._raw())
        if due:
            self._outbox.put_json(FLOOR_KEY, due)
            with self._lock:
                self._state = timebase.floor_written(self._state, due)

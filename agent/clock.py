"""The agent's one injected clock: wall time for timestamps, the monotonic clock for everything
that waits or measures. The runtime makes one and passes it to every component (the link too),
so tests can run any of them on a fake clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _mono_ms() -> int:
    return time.monotonic_ns() // 1_000_000


@dataclass(frozen=True)
class Clock:
    """`wall_ms`: Unix milliseconds (ts_ms on the wire); `mono_ms`: the device's monotonic
    clock in milliseconds (mono_ms on the wire, timeouts, intervals)."""

    wall_ms: Callable[[], int] = _wall_ms
    mono_ms: Callable[[], int] = _mono_ms

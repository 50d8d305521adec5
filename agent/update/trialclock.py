"""The one clock a trial release is judged by, read the same way by the agent (which sets the
deadline when it switches) and by the launcher (which judges it): CLOCK_BOOTTIME in
milliseconds with the kernel's boot id.

Not the wall clock: the agent's wall clock is corrected by the bridge's time
(agent.timebase) while the launcher's is the raw system clock, and either may jump (NTP, an RTC
that lost its battery). CLOCK_BOOTTIME only runs forward, suspend included, and restarts with
each boot; the boot id says which boot a reading belongs to (agent.update.machine re-arms the
deadline in a new boot, where the starts limit still bounds a trial).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


class TrialTime(NamedTuple):
    boot: str  # the kernel's boot id ("" where it cannot be read)
    ms: int  # CLOCK_BOOTTIME milliseconds in that boot


def boot_id() -> str:
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


def now() -> TrialTime:
    clock = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)
    return TrialTime(boot_id(), time.clock_gettime_ns(clock) // 1_000_000)

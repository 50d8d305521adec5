"""Sensor faults as values: what went wrong with which source, counted for the telemetry.

A scene source never raises into the agent's loop for a hardware problem: it returns the fault
with its reading, the composite source counts it, and every report carries the running counts
as `fault.<source>.<fault>` telemetry, so the cloud sees a flaky rig without a crash on it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


class Fault(enum.Enum):
    """What a source found wrong on one read."""

    MISSING = "missing"  # the device node or port is not there (not wired, driver not loaded)
    READ = "read"  # it is there but a read failed or returned nonsense
    STUCK = "stuck"  # it answers, but the value has not moved when it must have
    UNPLUGGED = "unplugged"  # it was there and went away (a disconnect mid-session)


FAULT_PREFIX = "fault."


def fault_key(source: str, fault: Fault) -> str:
    """The telemetry key a fault is counted under, e.g. `fault.obd2.unplugged`."""
    return f"{FAULT_PREFIX}{source}.{fault.value}"


@dataclass(frozen=True)
class FaultCounts:
    """Running fault counts by telemetry key; `add` returns the next value, this one stays."""

    counts: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    def add(self, source: str, faults: tuple[Fault, ...]) -> FaultCounts:
        if not faults:
            return self
        out = dict(self.counts)
        for fault in faults:
            key = fault_key(source, fault)
            out[key] = out.get(key, 0) + 1
        return FaultCounts(MappingProxyType(out))

    def telemetry(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))

    @property
    def total(self) -> int:
        return sum(self.counts.values())

"""Scene readers beside the IMU: the sources of the scenes' telemetry (EV mileage, fridge stock,
steps), and the composite source that merges them into one Reading and counts their faults.

`[sensors] source` still names the IMU that every report fingerprints; `[sensors] scenes` adds
readers polled with it. A reader returns its faults as values (agent.sensors.faults): the
composite counts them into `fault.<reader>.<fault>` telemetry and `<reader>.ok`, and neither a
reader's read nor the IMU's capture ever raises into the agent's loop once the agent runs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from agent.errors import AgentError
from agent.features import Capture
from agent.sensors.base import Source
from agent.sensors.faults import Fault, FaultCounts
from agent.sensors.iio import SensorStuck
from agent.triggers import Event, Reading

log = logging.getLogger(__name__)

IMU = "imu"
"""The fault counter name of the fingerprint source's capture."""


@dataclass(frozen=True)
class SceneReading:
    """One read of a scene reader: telemetry by key, the faults that began at this read, and
    whether the reader is healthy now (a fault episode is counted once, flagged while it lasts)."""

    telemetry: Mapping[str, int] = field(default_factory=dict)
    faults: tuple[Fault, ...] = ()
    ok: bool = True
    events: tuple[Event, ...] = ()


class SceneReader(Protocol):
    name: str

    def read(self, now_ms: int) -> SceneReading: ...

    def close(self) -> None: ...


class FaultEpisodes:
    """Counts a fault when it begins, not on every read while it lasts (pure bookkeeping)."""

    def __init__(self) -> None:
        self.active: frozenset[Fault] = frozenset()

    def update(self, now: frozenset[Fault]) -> tuple[Fault, ...]:
        began = tuple(sorted(now - self.active, key=lambda f: f.value))
        self.active = now
        return began


class SceneSource:
    """A Source: the IMU's captures, the IMU's and every reader's telemetry, fault counts."""

    def __init__(self, imu: Source, readers: tuple[SceneReader, ...]) -> None:
        self.imu = imu
        self.readers = readers
        self.faults = FaultCounts()
        self._last_capture: Capture | None = None
        self._imu_ok = True
        self._imu_episodes = FaultEpisodes()

    def poll(self, now_ms: int) -> Reading:
        base = self.imu.poll(now_ms)
        values = dict(base.telemetry)
        health = {f"{IMU}.ok": int(self._imu_ok)}
        events = list(base.events)
        for reader in self.readers:
            try:
                got = reader.read(now_ms)
            except Exception:  # a reader's bug must not stop the agent: count it, go on
                log.exception("scene reader %s failed", reader.name)
                got = SceneReading(faults=(Fault.READ,), ok=False)
            values.update(got.telemetry)
            health[f"{reader.name}.ok"] = int(got.ok)
            events.extend(got.events)
            self.faults = self.faults.add(reader.name, got.faults)
        # Health first: a report carries the first 32 entries, and faults must never be cut.
        telemetry = {**self.faults.telemetry(), **health, **values}
        return Reading(now_ms, telemetry, tuple(events))

    def capture(self) -> Capture:
        """The IMU's window; when the IMU fails mid-run (a read error, or a window of one
        repeated sample: `stuck`), the last good window again, with the fault counted once per
        episode and `imu.ok` = 0 while it lasts: a report still goes out and says its
        fingerprint is stale. Before any good window the error is raised (nothing to reuse)."""
        try:
            capture = self.imu.capture()
        except (AgentError, OSError, ValueError) as exc:
            fault = Fault.STUCK if isinstance(exc, SensorStuck) else Fault.READ
            self.faults = self.faults.add(IMU, self._imu_episodes.update(frozenset({fault})))
            self._imu_ok = False
            if self._last_capture is None:
                raise
            log.warning("IMU capture failed (%s): reusing the last window", exc)
            return self._last_capture
        self._imu_episodes.update(frozenset())
        self._last_capture, self._imu_ok = capture, True
        return capture

    def close(self) -> None:
        for reader in self.readers:
            reader.close()
        self.imu.close()

"""The sim source: agent.simulator's physics for the IMU, taps and clock; appliance telemetry
from agent.sensors.appliance (explicit emergencies come from the runtime's event spool).

Deterministic from `[sensors] seed` (by default derived from the device id). A clone on other
hardware is the same config with another seed: same key and id, different board physics.
"""

from __future__ import annotations

from agent.features import Capture
from agent.sensors.appliance import Telemetry
from agent.simulator.device import SimDevice
from agent.strokes import Stroke
from agent.triggers import Reading

SIM_EPOCH_MS = 1_767_225_600_000  # 2026-01-01T00:00Z: day 0 of the simulated calendar


class SimSource:
    def __init__(self, kind: str, seed: int, day_s: float, boot: int = 1, appliance: bool = True):
        """`appliance=False`: the IMU and taps only, when real scene readers give the telemetry."""
        self.device = SimDevice(seed, kind)
        self.appliance = appliance
        self.telemetry = Telemetry(kind, seed, day_s, SIM_EPOCH_MS)
        # Sessions of this boot never repeat those of earlier boots.
        self._session = boot * 1_000_000

    def poll(self, now_ms: int) -> Reading:
        if not self.appliance:
            return Reading(now_ms, {})
        telemetry, events = self.telemetry.read(now_ms)
        return Reading(now_ms, telemetry, events)

    def capture(self) -> Capture:
        self._session += 1
        return self.device.capture(self._session)

    def swipes(self, n: int, stranger: bool = False) -> list[Stroke]:
        """The last `n` swipes on the screen (the latest session's; none without a screen)."""
        return self.device.swipes(self._session, n, stranger)

    def enrollment(self, n: int = 6) -> list[Capture]:
        return self.device.enrollment(n)

    def close(self) -> None:
        pass

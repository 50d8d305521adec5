"""Per-device ingest state, read and locked once per batch: the replay windows (data and
session), the risk streak, the last boot counter, whether the device is online, and for the
server's score: the device kind and enrolled baseline (read only) and the server's score of its
newest report with that report's tamper codes.

A frozen value: the judge (`cloud_bridge.judge`) returns the next state and the caller keeps the
old one when it refuses, so a refusal cannot leave half a change behind. Read and written by
`cloud_bridge.store.ingest_repo`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from cloud_bridge.risk.signals import Memory
from protocol.replay import ReplayWindow

ACTIVE = "active"
RETIRED = "retired"
"""A key's status once a newer key of its device has signed (rotated out; never reactivated)."""
NO_BASELINE: Mapping[int, int] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class DeviceState:
    device_id: str
    fleet: str
    user: str
    status: str  # active or revoked
    data: ReplayWindow
    session: ReplayWindow
    streak: int
    last_boot: int
    online: bool
    kind: str = ""  # the enrolled device kind (the calibration's thresholds are per kind)
    baseline: Mapping[int, int] = field(default_factory=lambda: NO_BASELINE, hash=False)
    risk_q: int | None = None  # the server's score of the newest report; None: none yet
    risk_tamper: tuple[str, ...] = ()  # that report's tamper codes
    # What the per-device risk signals remember (clock, fingerprints, last fix, own median).
    risk_memory: Memory = field(default_factory=Memory, hash=False)

    def after_event(
        self,
        data: ReplayWindow,
        streak: int,
        risk_q: int | None,
        risk_tamper: tuple[str, ...],
        risk_memory: Memory | None = None,
    ) -> DeviceState:
        """This state with a data window, a risk streak, the newest report's server score and
        the signals' memory (what a data event changes; built directly: the ingest path does
        this once per message)."""
        return DeviceState(
            self.device_id, self.fleet, self.user, self.status, data, self.session, streak,
            self.last_boot, self.online, self.kind, self.baseline, risk_q, risk_tamper,
            self.risk_memory if risk_memory is None else risk_memory,
        )  # fmt: skip

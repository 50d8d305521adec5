"""Per-device ingest state, read and locked once per batch: the replay windows (data and
session), the risk streak, the last boot counter and whether the device is online.

A frozen value: the judge (`cloud_bridge.judge`) returns the next state and the caller keeps the
old one when it refuses, so a refusal cannot leave half a change behind. Read and written by
`cloud_bridge.store.ingest_repo`.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.replay import ReplayWindow

ACTIVE = "active"
RETIRED = "retired"
"""A key's status once a newer key of its device has signed (rotated out; never reactivated)."""


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

    def after_event(self, data: ReplayWindow, streak: int) -> DeviceState:
        """This state with a data window and a risk streak (what a data event changes; built
        directly: the ingest path does this once per message)."""
        return DeviceState(
            self.device_id, self.fleet, self.user, self.status, data, self.session, streak,
            self.last_boot, self.online,
        )  # fmt: skip

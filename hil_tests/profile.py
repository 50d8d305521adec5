"""Scenario durations: the issue's values on the bench, shorter ones under ``--ci``.

Every duration is an option (``--outage-seconds`` ...); ``--ci`` (or ``HIL_CI=1``) changes the
defaults so both virtual rigs run every scenario in CI's budget on two cores.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    outage_s: float  # broker down
    cut_s: float  # partition: link down
    impair_s: float  # partition: 10 % loss + 200 ms delay
    cadence_s: float  # steady reporting observed
    soak_s: float  # soak run
    storm_devices: int  # reconnect storm
    interval_s: float  # the devices' report interval
    drain_s: float  # how long a device may take to catch up after a fault before it fails

    def __post_init__(self) -> None:
        for name in (
            "outage_s",
            "cut_s",
            "impair_s",
            "cadence_s",
            "soak_s",
            "interval_s",
            "drain_s",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.storm_devices < 1:
            raise ValueError("storm_devices must be at least 1")


BENCH = Profile(
    "bench",
    outage_s=60,
    cut_s=60,
    impair_s=120,
    cadence_s=60,
    soak_s=3600,
    storm_devices=100,
    interval_s=1.0,
    drain_s=300,
)
CI = Profile(
    "ci",
    outage_s=15,
    cut_s=15,
    impair_s=20,
    cadence_s=15,
    soak_s=40,
    storm_devices=100,
    interval_s=0.5,
    drain_s=60,
)
PROFILES = {p.name: p for p in (BENCH, CI)}

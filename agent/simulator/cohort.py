"""Labelled sessions of a cohort of simulated devices, for training, evaluation and tests.

Device i of a cohort has seed `first_seed + i` and kind DEVICE_KINDS[i % 4]. Cohorts with
disjoint seed ranges are device-disjoint: a board's hardware and owner depend on its seed only,
and attackers' boards have seeds above 2**61 (agent.simulator.impostors.attacker_board).
Per device: an enrolled baseline from `enrollment_sessions` captures, `genuine` sessions of
normal use, and `per_impostor` attacks of each impostor kind that applies to the device's kind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from agent.features import Fingerprint, enroll, extract
from agent.simulator.device import SimDevice
from agent.simulator.impostors import applicable, impostor
from agent.simulator.profiles import DEVICE_KINDS

GENUINE = "genuine"
#: Seed ranges of the cohorts the project uses, so that none shares a device with another.
SPLITS = {
    "train": 0,
    "validation": 1_000_000,
    "eval": 2_000_000,
    "test": 3_000_000,
    "bench": 4_000_000,
}


@dataclass(frozen=True)
class LabelledSession:
    """A session fingerprint, its device's baseline and what produced it."""

    device_seed: int
    kind: str
    label: str  # GENUINE or an impostor kind
    baseline: Fingerprint
    current: Fingerprint

    @property
    def impostor(self) -> bool:
        return self.label != GENUINE


def device_sessions(
    seed: int, kind: str, genuine: int, per_impostor: int, enrollment_sessions: int = 6
) -> list[LabelledSession]:
    """All labelled sessions of one device."""
    device = SimDevice(seed, kind)
    baseline = enroll([extract(c) for c in device.enrollment(enrollment_sessions)])
    out = [
        LabelledSession(seed, kind, GENUINE, baseline, extract(device.capture(s)))
        for s in range(genuine)
    ]
    session = genuine
    for name in applicable(kind):
        for attack in range(per_impostor):
            capture = impostor(name, device, session, attack)
            out.append(LabelledSession(seed, kind, name, baseline, extract(capture)))
            session += 1
    return out


def cohort(
    first_seed: int,
    n_devices: int,
    genuine: int,
    per_impostor: int,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[LabelledSession]:
    """Sessions of devices first_seed .. first_seed + n_devices - 1, device by device."""
    for i in range(n_devices):
        yield from device_sessions(first_seed + i, DEVICE_KINDS[i % 4], genuine, per_impostor)
        if progress is not None:
            progress(i + 1, n_devices)

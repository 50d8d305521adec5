"""The zero-loss check, run after the agents have stopped.

For every device: the bridge's event log holds sequence numbers 1..n with no gap, and every
number the device ever used is either in that log or still waiting in the device's outbox (to
be sent at its next start). A device whose key was cloned has two holders of its numbers: the
log may then also hold numbers only the clone used, and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.outbox import Outbox


@dataclass(frozen=True)
class Loss:
    """The check's outcome for one device; `problem` is empty when nothing was lost."""

    device_id: str
    stored: int  # events in the bridge's log
    used: int  # sequence numbers the device used
    waiting: int  # numbered messages still in its outbox
    problem: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem


def _outbox(path: Path) -> tuple[int, set[int]]:
    """(next sequence number, numbers still in the outbox) of a stopped agent's outbox."""
    if not path.exists():
        return 1, set()
    box = Outbox.open(path)
    try:
        waiting = {e.seq for e in box.sent_after(0, 10**9) if e.seq is not None}
        return box.stats().next_seq, waiting
    finally:
        box.close()


def check(
    events: Mapping[str, Sequence[int]],
    holders: Mapping[str, Sequence[Path]],
) -> list[Loss]:
    """`events`: the bridge's sequence numbers per device. `holders`: per device, the outbox of
    the device itself first, then those of any clones of its key."""
    out = []
    for device_id, paths in sorted(holders.items()):
        stored = list(events.get(device_id, ()))
        next_seq, waiting = _outbox(paths[0])
        used = set(range(1, next_seq))
        others = set()
        for clone in paths[1:]:
            clone_next, _ = _outbox(clone)
            others |= set(range(1, clone_next))
        problem = ""
        if stored != list(range(1, len(stored) + 1)):
            gaps = sorted(set(range(1, (max(stored) if stored else 0) + 1)) - set(stored))
            problem = f"the event log has gaps: {gaps[:5]}"
        elif missing := sorted(used - set(stored) - waiting):
            problem = f"{len(missing)} numbers neither stored nor waiting: {missing[:5]}"
        elif strange := sorted(set(stored) - used - others):
            problem = f"the log holds numbers this device never used: {strange[:5]}"
        out.append(Loss(device_id, len(stored), len(used), len(waiting), problem))
    return out

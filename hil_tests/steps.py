"""What scenarios share: waiting, reading a rig's counters, and the zero-loss check.

A rig's counters come from the device itself: the agent's status.json (outbox next_seq,
last_ack, backlog, link), the ESP32's flash (its outbox counters). The bridge's side comes from
its event log (Bench.seqs), never from the device's word alone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from hil_tests.bench import Bench
from hil_tests.rigs.base import KIND_ESP32, Counters, Rig


def wait(predicate: Callable[[], bool], timeout_s: float, step_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return bool(predicate())


def counters(rig: Rig) -> Counters:
    """The device's counters now (zeros before it wrote any)."""
    if rig.kind == KIND_ESP32:
        from hil_tests.rigs.virtual_esp32 import esp32_counters

        return esp32_counters(rig)
    try:
        doc = json.loads(rig.read_file("status.json"))
    except (OSError, ValueError, RuntimeError):
        return Counters(0, 0, 0, False)
    box = doc.get("outbox") or {}
    return Counters(
        last_seq=int(box.get("next_seq", 1)) - 1,
        last_ack=int(doc.get("last_ack", 0)),
        backlog=int(box.get("backlog", 0)),
        connected=doc.get("link") == "connected" and bool(doc.get("running")),
        deleted_upto=int(box.get("last_ack", 0)),
    )


def gaps(seqs: list[int]) -> list[int]:
    """Numbers missing from 1..max(seqs)."""
    have = set(seqs)
    return [n for n in range(1, max(have, default=0) + 1) if n not in have]


def contiguous(seqs: list[int]) -> int:
    """The highest n with 1..n all in ``seqs``."""
    have, n = set(seqs), 0
    while n + 1 in have:
        n += 1
    return n


def deleted_ahead(bench: Bench, rig: Rig) -> int:
    """How far the device's outbox has deleted past what the bridge stored (0 when sound).

    The product's rule (docs/architecture.md, section 3): the device deletes a message only
    when a bridge-signed ack covers it, and the bridge acks only what it committed. A positive
    value means that a power cut now would lose those messages. The device is read first: the
    bridge's log only grows, so a later read of it cannot make a sound device look unsound.
    """
    deleted = counters(rig).deleted_upto
    return max(0, deleted - contiguous(bench.seqs(rig.device_id)))


def caught_up(bench: Bench, rig: Rig, upto: int) -> bool:
    """The bridge stored every number 1..upto of the device, and the device has them acked."""
    seqs = bench.seqs(rig.device_id)
    return (
        len(seqs) > 0 and max(seqs) >= upto and not gaps(seqs) and (counters(rig).last_ack >= upto)
    )


@dataclass(frozen=True)
class Loss:
    """The zero-loss verdict of a run: what the device numbered, what the bridge stored."""

    numbered: int
    stored: int
    missing: list[int]
    conflicts: list[str]

    @property
    def ok(self) -> bool:
        return not self.missing and not self.conflicts and self.stored >= self.numbered

    def __str__(self) -> str:
        return (
            f"{self.stored} stored of {self.numbered} numbered, {len(self.missing)} missing"
            f"{' ' + str(self.missing[:10]) if self.missing else ''}, "
            f"{len(self.conflicts)} number(s) reused"
        )


def loss(bench: Bench, rig: Rig) -> Loss:
    numbered = counters(rig).last_seq
    seqs = bench.seqs(rig.device_id)
    missing = [n for n in range(1, numbered + 1) if n not in set(seqs)]
    return Loss(numbered, len(set(seqs)), missing, bench.conflicts(rig.device_id))


class Timeline:
    """Seconds since the scenario began, for the chart's x axis."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.t0

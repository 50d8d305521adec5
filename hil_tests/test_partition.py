"""Partition scenarios: the device's link cut, then a lossy, slow link; zero loss either way.

The fault is made by the bench on the device's network path (hil_tests/faults: its namespace's
veth pair, `tc netem` or the relay's emulation), never inside the device or the broker. An
auditor samples throughout that the device never deleted a message the bridge had not stored.
"""

from __future__ import annotations

import time

import pytest

from hil_tests.bench import Bench
from hil_tests.profile import Profile
from hil_tests.report import Figure
from hil_tests.rigs.base import Rig
from hil_tests.steps import Timeline, caught_up, counters, deleted_ahead, loss, wait
from hil_tests.test_delivery import started

DELAY_MS = 200
LOSS_PCT = 10.0


def can_fault_link(rig: Rig) -> None:
    """Skip (a real rig without a controllable link) before anything is provisioned."""
    try:
        rig.cut_link()
        rig.heal_link()
    except NotImplementedError as exc:
        pytest.skip(str(exc))


class Sampler:
    """Samples the device's backlog, ack lag and the auditor into the figure."""

    def __init__(self, bench: Bench, rig: Rig, record: Figure) -> None:
        self.bench, self.rig, self.record = bench, rig, record
        self.tl = Timeline()
        self.ahead = 0
        record.y_label = "messages"

    def __call__(self) -> None:
        c = counters(self.rig)
        self.ahead = max(self.ahead, deleted_ahead(self.bench, self.rig))
        self.record.add("device outbox", self.tl.now(), c.backlog)
        self.record.add("numbered, not yet acked", self.tl.now(), c.last_seq - c.last_ack)

    def until_caught_up(self, target: int) -> bool:
        """Caught up to ``target``, or given up: what a device deleted ahead is lost for good."""
        self()
        return self.ahead > 0 or caught_up(self.bench, self.rig, target)

    def run_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self()
            time.sleep(0.5)


def test_partition_link_cut_zero_loss(
    bench: Bench, rig: Rig, profile: Profile, record: Figure
) -> None:
    can_fault_link(rig)
    started(bench, rig, "partition")
    sample = Sampler(bench, rig, record)
    sample.run_for(2)
    rig.cut_link()
    try:
        sample.run_for(profile.cut_s)
    finally:
        rig.heal_link()
    healed = time.monotonic()
    peak = counters(rig)
    target = peak.last_seq + peak.backlog
    done = wait(lambda: sample.until_caught_up(target), profile.drain_s, 0.25)
    drain_s = time.monotonic() - healed
    rig.stop()
    result = loss(bench, rig)
    record.summary = (
        f"link cut {profile.cut_s:.0f} s, backlog {peak.backlog}, caught up {drain_s:.1f} s "
        f"after the link came back; {result}; deleted ahead of the bridge: {sample.ahead}"
    )
    assert sample.ahead == 0, f"the device deleted {sample.ahead} messages not yet stored"
    assert done, f"not caught up: {result}\n{rig.logs()[-2000:]}"
    assert result.ok, result


def test_partition_lossy_slow_link_zero_loss(
    bench: Bench, rig: Rig, profile: Profile, record: Figure
) -> None:
    can_fault_link(rig)
    started(bench, rig, "partition")
    sample = Sampler(bench, rig, record)
    sample.run_for(2)
    before = counters(rig)
    how = rig.impair_link(DELAY_MS, LOSS_PCT)
    try:
        sample.run_for(profile.impair_s)
        during = counters(rig)
    finally:
        rig.heal_link()
    healed = time.monotonic()
    target = during.last_seq + during.backlog
    done = wait(lambda: sample.until_caught_up(target), profile.drain_s, 0.25)
    drain_s = time.monotonic() - healed
    rig.stop()
    result = loss(bench, rig)
    interval_s = float(getattr(rig, "interval_s", profile.interval_s))  # the rig's own setting
    acked_rate = (during.last_ack - before.last_ack) / profile.impair_s
    record.summary = (
        f"{LOSS_PCT:.0f} % loss + {DELAY_MS} ms delay ({how}) for {profile.impair_s:.0f} s: "
        f"{acked_rate:.2f} reports/s acked (configured {1 / interval_s:.2f}/s), "
        f"caught up {drain_s:.1f} s after; {result}; deleted ahead: {sample.ahead}"
    )
    assert sample.ahead == 0, f"the device deleted {sample.ahead} messages not yet stored"
    assert done, f"not caught up: {result}\n{rig.logs()[-2000:]}"
    assert result.ok, result
    assert acked_rate > 0, "nothing was acknowledged over the impaired link"

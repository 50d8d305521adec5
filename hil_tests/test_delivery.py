"""Delivery scenarios: birth, cadence, outage (broker down) and power cut (SIGKILL / reset).

Each records its measured figure in the run's report (hil-report/report.md); the verdict is
the test's outcome. Zero loss is judged from the bridge's event log: every number the device
had acknowledged is stored, the stored numbers have no gap, and no number came twice with other
content (the bridge's seq_conflict refusals).
"""

from __future__ import annotations

import itertools
import statistics
import time

import pytest

from hil_tests.bench import Bench
from hil_tests.profile import Profile
from hil_tests.report import Figure
from hil_tests.rigs.base import Counters, Rig
from hil_tests.steps import Timeline, caught_up, counters, deleted_ahead, loss, wait

START_S = 90.0
"""Power-on to a first acked report, generously: a busy two-core CI machine loads the model
and the MicroPython firmware slowly. The measured figure is what the report shows."""


def started(bench: Bench, rig: Rig, scenario: str, acked: int = 3) -> None:
    """Provision, install, power on, and wait until ``acked`` reports are acknowledged."""
    bench.provision(rig, scenario)
    rig.start()
    assert wait(lambda: counters(rig).last_ack >= acked, START_S), rig.logs()[-3000:]


def test_birth_power_on_to_first_acked_report(bench: Bench, rig: Rig, record: Figure) -> None:
    bench.provision(rig, "birth")
    tl = Timeline()
    rig.start()
    connected_s = acked_s = None
    while tl.now() < START_S and acked_s is None:
        c = counters(rig)
        if c.connected and connected_s is None:
            connected_s = tl.now()
        if c.last_ack >= 1:
            acked_s = tl.now()
            connected_s = connected_s if connected_s is not None else acked_s
        record.add("acked", tl.now(), c.last_ack)
        time.sleep(0.05)
    record.y_label = "reports acknowledged"
    record.summary = (
        f"connected (birth) after {connected_s if connected_s is not None else float('nan'):.1f} s,"
        f" first acked report after {acked_s if acked_s is not None else float('nan'):.1f} s"
    )
    assert acked_s is not None, rig.logs()[-3000:]
    assert bench.seqs(rig.device_id)[:1] == [1]  # the bridge stored the first report


def test_cadence_steady_interval_and_jitter(
    bench: Bench, rig: Rig, profile: Profile, record: Figure
) -> None:
    """The intervals between the device's own report timestamps, as the bridge stored them."""
    started(bench, rig, "cadence")
    first = counters(rig).last_seq
    time.sleep(profile.cadence_s)
    last = counters(rig).last_seq
    assert wait(lambda: caught_up(bench, rig, last), profile.drain_s)
    times = bench.report_times_ms(rig.device_id)[first:last]
    intervals = [(b - a) / 1000 for a, b in itertools.pairwise(times)]
    interval_s = float(getattr(rig, "interval_s", profile.interval_s))  # the rig's own setting
    for i, gap in enumerate(intervals):
        record.add("interval (s)", i * interval_s, gap)
    record.y_label = "seconds between reports"
    mean = statistics.fmean(intervals) if intervals else float("nan")
    jitter = statistics.pstdev(intervals) if len(intervals) > 1 else float("nan")
    record.summary = (
        f"{len(times)} reports in {profile.cadence_s:.0f} s: interval {mean:.3f} s "
        f"(configured {interval_s} s), jitter {jitter * 1000:.0f} ms (std dev), "
        f"longest {max(intervals, default=float('nan')):.3f} s"
    )
    assert len(intervals) >= 3, record.summary
    # a report every interval: none skipped, none doubled
    assert abs(mean - interval_s) <= 0.25 * interval_s, record.summary
    assert max(intervals) < 3 * interval_s, record.summary


def test_outage_broker_down_zero_loss_and_drain(
    bench: Bench, rig: Rig, profile: Profile, record: Figure
) -> None:
    """The broker crashes (SIGKILL) while it holds messages for a slow bridge, stays down, and
    comes back without them: the device must resend all it has no bridge ack for."""
    if bench.broker is None:
        pytest.skip("--broker: the suite does not stop the bench's own broker")
    broker = bench.broker
    started(bench, rig, "outage")
    tl = Timeline()
    record.y_label = "messages"
    ahead = 0

    def sample() -> Counters:
        nonlocal ahead
        c = counters(rig)
        ahead = max(ahead, deleted_ahead(bench, rig))
        record.add("device outbox", tl.now(), c.backlog)
        record.add("deleted before the bridge stored them", tl.now(), ahead)
        return c

    paused = bench.pause_bridge()  # a slow cloud: the broker queues for the bridge
    try:
        wait(lambda: sample().last_seq >= counters(rig).last_ack + 3, 10, 0.2)
        broker.kill()  # a crash: what it queued is gone
    finally:
        bench.resume_bridge()
    down = time.monotonic()
    while time.monotonic() - down < profile.outage_s:
        sample()
        time.sleep(0.5)
    peak = sample()
    broker.start()
    up = time.monotonic()
    # everything collected during the outage is numbered, sent, stored and acknowledged
    target = peak.last_seq + peak.backlog

    def drained() -> bool:  # or given up: a device that deleted ahead has lost them for good
        c = sample()
        return ahead > 0 or (c.last_seq >= target and caught_up(bench, rig, target))

    done = wait(drained, profile.drain_s, 0.25)
    drain_s = time.monotonic() - up
    rig.stop()
    result = loss(bench, rig)
    record.summary = (
        f"broker crashed{' with a paused bridge' if paused else ''}, down "
        f"{profile.outage_s:.0f} s, backlog {peak.backlog} at restart, drained in {drain_s:.1f} s;"
        f" {result}; deleted ahead of the bridge: {ahead}"
    )
    assert ahead == 0, f"the device deleted {ahead} messages the bridge had not stored"
    assert done, f"not drained in {profile.drain_s:.0f} s: {result}\n{rig.logs()[-2000:]}"
    assert result.ok, result


def test_power_cut_mid_write_outbox_intact_no_reused_number(
    bench: Bench, rig: Rig, profile: Profile, record: Figure
) -> None:
    """Three power cuts while messages are in flight (the link cut first where the rig can, so
    the cut lands on numbered, unacknowledged messages), each followed by a restart."""
    started(bench, rig, "power_cut")
    tl = Timeline()
    record.y_label = "sequence numbers"
    try:
        rig.cut_link()
        can_cut = True
        rig.heal_link()
    except NotImplementedError:
        can_cut = False
    cuts = 3
    ahead = 0
    for i in range(cuts):
        before = counters(rig).last_seq
        if can_cut:
            rig.cut_link()
        # messages keep being numbered and sent into the cut link (or acked, without one)
        wait(lambda b=before: counters(rig).last_seq >= b + 4, 30, 0.05)  # type: ignore[misc]
        time.sleep(0.013 * (i + 1))  # land the cut at different points of the write cycle
        rig.kill()
        ahead = max(ahead, deleted_ahead(bench, rig))
        record.add("numbered at the cut", tl.now(), counters(rig).last_seq)
        record.add("stored by the bridge", tl.now(), len(bench.seqs(rig.device_id)))
        if can_cut:
            rig.heal_link()
        if ahead:
            break  # lost for good: no need to wait for what cannot come
        rig.start()
        if not wait(lambda b=before: counters(rig).last_ack >= b + 4, profile.drain_s):  # type: ignore[misc]
            break
    peak = counters(rig).last_seq
    done = bool(not ahead and wait(lambda: caught_up(bench, rig, peak), profile.drain_s, 0.25))
    rig.stop()
    result = loss(bench, rig)
    record.summary = (
        f"{cuts} power cuts {'in a cut link' if can_cut else 'mid-stream'}; {result}; "
        f"deleted ahead of the bridge at a cut: {ahead}"
    )
    assert ahead == 0, f"the device deleted {ahead} messages the bridge had not stored"
    assert done, f"not caught up: {result}\n{rig.logs()[-2000:]}"
    assert result.ok, result

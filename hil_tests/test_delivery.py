"""Delivery scenarios: birth, cadence, outage (broker down) and power cut (SIGKILL / reset).

Each records its measured figure in the run's report (hil-report/report.md); the verdict is
the test's outcome. Zero loss is judged from the bridge's event log: every number the device
had acknowledged is stored, the stored numbers have no gap, and no number came twice with other
content (the bridge's seq_conflict refusals).
"""

from __future__ import annotations

import statistics
import time

import pytest

from hil_tests.bench import Bench
from hil_tests.profile import Profile
from hil_tests.report import Figure
from hil_tests.rigs.base import Rig
from hil_tests.steps import Timeline, caught_up, counters, loss, wait

START_S = 90.0
"""Power-on to a first acked report, generously: a busy two-core CI machine loads the model
and the MicroPython firmware slowly. The measured figure is what the report shows."""
DRAIN_S = 180.0


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
    started(bench, rig, "cadence")
    tl = Timeline()
    first = counters(rig).last_seq
    stamps: list[float] = []
    last = first
    while tl.now() < profile.cadence_s:
        now = counters(rig).last_seq
        if now > last:
            stamps += [tl.now()] * (now - last)
            last = now
        time.sleep(0.02)
    intervals = [b - a for a, b in zip(stamps, stamps[1:], strict=False) if b > a]
    for i, gap in enumerate(intervals):
        record.add("interval (s)", i, gap)
    record.y_label = "seconds between reports"
    mean = statistics.fmean(intervals) if intervals else float("nan")
    jitter = statistics.pstdev(intervals) if len(intervals) > 1 else float("nan")
    rate = (last - first) / profile.cadence_s
    record.summary = (
        f"{last - first} reports in {profile.cadence_s:.0f} s: {rate:.2f}/s "
        f"(configured {1 / profile.interval_s:.2f}/s), interval {mean:.2f} s, jitter {jitter:.3f} s"
    )
    # within half of the configured rate either way: a report each interval, none skipped
    assert 0.5 / profile.interval_s <= rate <= 1.5 / profile.interval_s, record.summary
    result = loss(bench, rig)
    assert not result.missing[: max(0, counters(rig).last_ack)], result


def test_outage_broker_down_zero_loss_and_drain(
    bench: Bench, rig: Rig, profile: Profile, record: Figure
) -> None:
    if bench.broker is None:
        pytest.skip("--broker: the suite does not stop the bench's own broker")
    started(bench, rig, "outage")
    tl = Timeline()
    record.y_label = "messages in the device's outbox"
    bench.broker.stop()
    down = time.monotonic()
    while time.monotonic() - down < profile.outage_s:
        record.add("backlog", tl.now(), counters(rig).backlog)
        time.sleep(0.5)
    peak = counters(rig)
    bench.broker.start()
    up = time.monotonic()

    # everything collected during the outage is numbered, sent, stored and acknowledged
    target = peak.last_seq + peak.backlog

    def drained() -> bool:
        c = counters(rig)
        record.add("backlog", tl.now(), c.backlog)
        return c.last_seq >= target and caught_up(bench, rig, target)

    done = wait(drained, DRAIN_S, 0.25)
    drain_s = time.monotonic() - up
    rig.stop()
    result = loss(bench, rig)
    record.summary = (
        f"broker down {profile.outage_s:.0f} s, backlog {peak.backlog} at restart, "
        f"drained in {drain_s:.1f} s; {result}"
    )
    assert done, f"not drained in {DRAIN_S:.0f} s: {result}\n{rig.logs()[-2000:]}"
    assert result.ok, result


def test_power_cut_mid_write_outbox_intact_no_reused_number(
    bench: Bench, rig: Rig, record: Figure
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
    for i in range(cuts):
        before = counters(rig).last_seq
        if can_cut:
            rig.cut_link()
        # messages keep being numbered and sent into the cut link (or acked, without one)
        wait(lambda b=before: counters(rig).last_seq >= b + 4, 30, 0.05)  # type: ignore[misc]
        time.sleep(0.013 * (i + 1))  # land the cut at different points of the write cycle
        rig.kill()
        record.add("numbered at the cut", tl.now(), counters(rig).last_seq)
        if can_cut:
            rig.heal_link()
        rig.start()
        record.add("acked", tl.now(), counters(rig).last_ack)
        assert wait(lambda b=before: counters(rig).last_ack >= b + 4, START_S), rig.logs()[-2000:]
    peak = counters(rig).last_seq
    done = wait(lambda: caught_up(bench, rig, peak), DRAIN_S, 0.25)
    rig.stop()
    result = loss(bench, rig)
    record.summary = f"{cuts} power cuts {'in a cut link' if can_cut else 'mid-stream'}; {result}"
    assert done, f"not caught up: {result}\n{rig.logs()[-2000:]}"
    assert result.ok, result

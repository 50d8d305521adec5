"""Fleet-level scenarios: the reconnect storm after a broker restart, and the soak.

The storm runs the rig's device among light-weight simulated devices (hil_tests/storm.py) that
reconnect with the agent's own backoff policy; the soak runs the rig's device alone for
``--soak-seconds`` and fits a regression line to its memory and outbox size.
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
from hil_tests.storm import StormDevice, admit, peak_per_second
from hil_tests.test_delivery import started

BROKER_DOWN_S = 5.0
"""The broker restart: a few seconds down, as a restart with a large persistence file takes;
the devices' refused attempts meanwhile are what the jitter must spread."""
RECONNECT_S = 60.0  # the bound: every device back within a minute of the restart
PEAK_SHARE = 0.6
"""At most this share of the fleet reconnects within any one second: the jitter spreads them."""
MEMORY_GROWTH_PCT = 10.0
"""The soak's bound on memory growth projected over the run by the regression line."""


def test_reconnect_storm_fleet_back_within_a_minute(
    bench: Bench, rig: Rig, profile: Profile, record: Figure
) -> None:
    if bench.broker is None or not bench.owns_bridge:
        pytest.skip("--broker/--bridge: the suite does not restart the bench's own broker")
    broker = bench.broker
    started(bench, rig, "reconnect_storm")
    n = profile.storm_devices - 1  # the rig's device is the last of the fleet
    prefix = f"storm-{rig.device_id}"
    names = [f"{prefix}-{i:03d}" for i in range(n)]
    admit(bench.bridge, names)
    host, port = bench.broker_addr
    fleet = [StormDevice(name, host, port, seed=i) for i, name in enumerate(names)]
    try:
        for d in fleet:
            d.start()
        assert wait(lambda: all(d.connected for d in fleet), 60), "the fleet did not connect"
        restart = time.monotonic()
        broker.stop()
        time.sleep(BROKER_DOWN_S)
        broker.start()
        back = time.monotonic()
        rig_back: float | None = None

        def everyone() -> bool:
            nonlocal rig_back
            if rig_back is None and counters(rig).connected:
                rig_back = time.monotonic()
            return rig_back is not None and all(d.connected for d in fleet)

        # status.json says "connected" until the agent notices: wait for a fresh connection
        time.sleep(0.5)
        rig_back = None
        done = wait(everyone, RECONNECT_S + 30, 0.1)
    finally:
        for d in fleet:
            d.stop()
    firsts = [d.connects[-1] for d in fleet if d.connects and d.connects[-1] >= restart]
    if rig_back is not None:
        firsts.append(rig_back)
    attempts = [t for d in fleet for t in d.attempts if t >= restart]
    last_s = max(firsts, default=back) - back
    peak_connects = peak_per_second(firsts, back)
    peak_attempts = peak_per_second(attempts, restart)
    tl0 = restart
    buckets: dict[int, int] = {}
    for t in attempts:
        buckets[int(t - tl0)] = buckets.get(int(t - tl0), 0) + 1
    for second, count in sorted(buckets.items()):
        record.add("connection attempts per second", second, count)
    cbuckets: dict[int, int] = {}
    for t in firsts:
        cbuckets[int(t - tl0)] = cbuckets.get(int(t - tl0), 0) + 1
    for second, count in sorted(cbuckets.items()):
        record.add("reconnects per second", second, count)
    record.y_label = "per second"
    record.summary = (
        f"broker down {BROKER_DOWN_S:.0f} s; {len(firsts)}/{n + 1} devices back, the last "
        f"{last_s:.1f} s after the broker; peak "
        f"{peak_connects} reconnects/s, {peak_attempts} attempts/s ({len(attempts)} attempts)"
    )
    assert done, record.summary
    assert last_s <= RECONNECT_S, record.summary
    assert peak_connects <= PEAK_SHARE * (n + 1), record.summary
    last = counters(rig).last_seq
    assert wait(lambda: caught_up(bench, rig, last), profile.drain_s), loss(bench, rig)


def slope_per_s(points: list[tuple[float, float]]) -> float:
    if len(points) < 3:
        return 0.0
    xs, ys = zip(*points, strict=True)
    return statistics.linear_regression(xs, ys).slope


def test_soak_memory_and_outbox_without_growth(
    bench: Bench, rig: Rig, profile: Profile, record: Figure
) -> None:
    started(bench, rig, "soak")
    tl = Timeline()
    step_s = max(1.0, profile.soak_s / 300)
    memory: list[tuple[float, float]] = []
    backlog: list[tuple[float, float]] = []
    try:
        rig.memory_kb()
        can_measure = True
    except NotImplementedError:
        can_measure = False
    while tl.now() < profile.soak_s:
        t = tl.now()
        if can_measure:
            kb = rig.memory_kb()
            memory.append((t, kb))
            record.add("memory (KiB / 100)", t, kb / 100)
        c = counters(rig)
        backlog.append((t, c.backlog))
        record.add("device outbox", t, c.backlog)
        assert rig.alive(), rig.logs()[-2000:]
        time.sleep(step_s)
    # the regression over the second half: start-up (imports, model load, caches) excluded
    half = [p for p in memory if p[0] >= profile.soak_s / 2]
    mem_slope = slope_per_s(half)
    mean_kb = statistics.fmean(v for _t, v in half) if half else 0.0
    growth_pct = 100 * mem_slope * profile.soak_s / mean_kb if mean_kb else 0.0
    out_slope = slope_per_s([p for p in backlog if p[0] >= profile.soak_s / 2])
    last = counters(rig).last_seq
    done = wait(lambda: caught_up(bench, rig, last), profile.drain_s)
    result = loss(bench, rig)
    record.y_label = "KiB / 100, messages"
    record.summary = (
        f"{profile.soak_s:.0f} s: memory {mean_kb / 1024:.1f} MiB, trend "
        f"{mem_slope * 3600:+.0f} KiB/h ({growth_pct:+.1f} % over the run); outbox trend "
        f"{out_slope * 3600:+.1f} messages/h; {result}"
    )
    assert growth_pct <= MEMORY_GROWTH_PCT, record.summary
    assert out_slope * profile.soak_s < 5, record.summary  # the outbox does not pile up
    assert done and result.ok, record.summary

"""Device-side faults: a failing or stuck sensor, and a wall clock that jumps.

The faults are injected by the rig into the device's simulated hardware (the virtual ESP32's
I2C bus and clock, hil_tests/rigs/esp32_main.py; the virtual agent's, agent_main.py), never into
the code that handles them.
"""

from __future__ import annotations

import time

import pytest

from hil_tests.bench import Bench
from hil_tests.profile import Profile
from hil_tests.report import Figure
from hil_tests.rigs.base import Rig
from hil_tests.steps import Timeline, caught_up, counters, loss, wait

FAULT_S = 5.0  # how long each fault lasts: several report intervals
JUMP_S = 3600


def can(rig: Rig, what: str) -> None:
    try:
        if what == "sensor":
            rig.inject_sensor_fault("none")
        else:
            rig.set_clock_offset_s(0)
    except NotImplementedError as exc:
        pytest.skip(str(exc))


def test_sensor_fault_i2c_errors_and_stuck_values_no_crash(
    bench: Bench, rig: Rig, profile: Profile, record: Figure
) -> None:
    bench.provision(rig, "sensor_fault")
    can(rig, "sensor")
    rig.start()
    assert wait(lambda: counters(rig).last_ack >= 3, 90), rig.logs()[-3000:]
    tl = Timeline()
    record.y_label = "reports stored"
    phases = []
    flagged: dict[str, bool] = {}
    for fault in ("i2c_error", "none", "stuck", "none"):
        rig.inject_sensor_fault(fault)
        before = counters(rig).last_seq
        end = time.monotonic() + FAULT_S
        while time.monotonic() < end:
            record.add("stored", tl.now(), len(bench.seqs(rig.device_id)))
            time.sleep(0.5)
        after = counters(rig).last_seq
        phases.append((fault, after - before, rig.alive()))
        if fault != "none":  # a report made during the fault says so: fault.<source>.<fault>
            wait(lambda a=after: caught_up(bench, rig, a), profile.drain_s)  # type: ignore[misc]
            during = bench.reports(rig.device_id)[before:after]
            flagged[fault] = any(
                k.startswith("fault.") and v > 0 for r in during for k, v in r.telemetry.items()
            )
    record.summary = "; ".join(
        f"{fault}: {n} reports, {'alive' if ok else 'DEAD'}"
        + (f", {'flagged' if flagged.get(fault) else 'NOT flagged'}" if fault != "none" else "")
        for fault, n, ok in phases
    )
    assert all(ok for _f, _n, ok in phases), f"{record.summary}\n{rig.logs()[-3000:]}"
    assert all(n > 0 for _f, n, _ok in phases), record.summary
    assert flagged == {"i2c_error": True, "stuck": True}, record.summary
    last = counters(rig).last_seq
    assert wait(lambda: caught_up(bench, rig, last), profile.drain_s), loss(bench, rig)


def test_clock_jump_plus_minus_one_hour_nothing_lost_skew_reported(
    bench: Bench, rig: Rig, profile: Profile, record: Figure
) -> None:
    bench.provision(rig, "clock_jump")
    can(rig, "clock")
    rig.start()
    assert wait(lambda: counters(rig).last_ack >= 3, 90), rig.logs()[-3000:]
    measured: list[tuple[int, float]] = []
    for offset_s in (JUMP_S, -JUMP_S, 0):
        rig.set_clock_offset_s(offset_s)
        time.sleep(1.5)  # the switch is read once a second: reports from here on are off
        before = counters(rig).last_seq
        time.sleep(FAULT_S)
        after = counters(rig).last_seq
        assert rig.alive(), rig.logs()[-3000:]
        assert wait(lambda a=after: caught_up(bench, rig, a), profile.drain_s), loss(bench, rig)  # type: ignore[misc]
        skews = [sk for seq, sk in bench.skews_ms(rig.device_id) if before < seq <= after]
        assert skews, f"no report stored during the {offset_s:+d} s jump"
        median_s = sorted(skews)[len(skews) // 2] / 1000
        measured.append((offset_s, median_s))
    for seq, skew in bench.skews_ms(rig.device_id):
        record.add("report ts_ms - bridge received (s)", seq, skew / 1000)
    record.x_label = "sequence number"
    record.y_label = "device clock skew (s)"
    rig.stop()
    result = loss(bench, rig)
    record.summary = (
        "; ".join(f"jump {o:+d} s: skew seen {s:+.1f} s" for o, s in measured) + f"; {result}"
    )
    assert result.ok, result
    # The device's time base (agent/timebase.py, shared with the firmware) believes a forward
    # jump, so the bridge sees it as it is; it never runs the clock back, so after the -1 h
    # jump and the return the device holds its time floor, ahead of the bridge, rather than
    # stamp reports with times it has already passed.
    (ahead_s, seen_ahead_s), *back = measured
    assert abs(seen_ahead_s - ahead_s) < 5, record.summary
    assert all(seen_s > seen_ahead_s - FAULT_S - 30 for _o, seen_s in back), record.summary

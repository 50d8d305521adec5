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


@pytest.mark.xfail(
    strict=True,
    reason="product gap found by this bench: an I2C read error escapes the IMU capture and "
    "stops the device (agent: runtime.report -> Mpu6050Source.capture without a SceneSource; "
    "firmware: device.step -> mpu6050.read), and no source flags a stuck IMU",
)
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

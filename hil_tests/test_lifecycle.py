"""Lifecycle scenarios driven by the operator's own commands: key rotation.

The operator's `cloud-bridge devices rotate` asks the running device for a new key; the device
answers with an enrollment signed by its current key and signs with the new one from then on.
Nothing may be lost across the change, and numbering carries on.
"""

from __future__ import annotations

import time

from hil_tests.bench import Bench
from hil_tests.profile import Profile
from hil_tests.report import Figure
from hil_tests.rigs.base import Rig
from hil_tests.steps import Timeline, caught_up, counters, loss, wait
from hil_tests.test_delivery import started


def test_key_rotation_new_key_no_loss(
    bench: Bench, rig: Rig, profile: Profile, record: Figure
) -> None:
    started(bench, rig, "key_rotation")
    kids = bench.kids(rig.device_id)
    old_kid = kids[-1][1]
    generation = bench.key_generation(rig.device_id)
    tl = Timeline()
    asked = time.monotonic()
    bench.rotate(rig.device_id)

    def rotated() -> bool:
        seen = bench.kids(rig.device_id)
        record.add("events stored", tl.now(), len(seen))
        return any(kid != old_kid for _seq, kid in seen)

    done = wait(rotated, profile.drain_s, 0.25)
    took_s = time.monotonic() - asked
    new_generation = bench.key_generation(rig.device_id)
    time.sleep(3 * float(getattr(rig, "interval_s", profile.interval_s)))
    last = counters(rig).last_seq
    caught = wait(lambda: caught_up(bench, rig, last), profile.drain_s)
    rig.stop()
    result = loss(bench, rig)
    first_new = next((seq for seq, kid in bench.kids(rig.device_id) if kid != old_kid), None)
    record.y_label = "events stored"
    record.summary = (
        f"rotate asked: first report under the new key (seq {first_new}) after {took_s:.1f} s; "
        f"key generation {generation} -> {new_generation}; {result}"
    )
    assert done, f"no report under a new key: {record.summary}\n{rig.logs()[-2000:]}"
    assert new_generation == generation + 1, record.summary
    assert caught, result
    assert result.ok, result

"""Falls and the day's count: the pure detectors on synthetic accelerometer streams (steps:
test_activity_classify.py)."""

from __future__ import annotations

import math
import random

import pytest

from agent import activity
from agent.activity import DAY_MS, DaySteps, FallState

HZ = 50


def walk(seconds: float, steps_per_s: float, swing_g: float = 0.3, seed: int = 1) -> list[float]:
    """|a| while walking: a swing about 1 g per step, with sensor noise."""
    rng = random.Random(seed)
    n = int(seconds * HZ)
    return [
        1.0 + swing_g * math.sin(2 * math.pi * steps_per_s * i / HZ) + rng.gauss(0, 0.01)
        for i in range(n)
    ]


def fall(free_s: float, impact_g: float) -> list[float]:
    return [1.0] * HZ + [0.1] * int(free_s * HZ) + [0.6, impact_g, 1.4] + [1.0] * HZ


def test_detect_falls__free_fall_then_impact() -> None:
    _st, n = activity.detect_falls(FallState(), fall(0.3, 3.5), HZ)
    assert n == 1


@pytest.mark.parametrize(
    "samples",
    [
        fall(0.02, 3.5),  # a bump, no free fall
        fall(0.3, 1.8),  # dropped onto something soft: no impact
        [1.0] * HZ + [2.2, 3.0, 2.0] + [1.0] * HZ,  # sitting down hard: impact without a fall
        walk(10, 2.6, swing_g=0.6),  # running
    ],
)
def test_detect_falls__not_a_fall(samples: list[float]) -> None:
    _st, n = activity.detect_falls(FallState(), samples, HZ)
    assert n == 0


def test_detect_falls__across_batches() -> None:
    samples = fall(0.3, 3.5)
    st, n1 = activity.detect_falls(FallState(), samples[: HZ + 10], HZ)
    _st, n2 = activity.detect_falls(st, samples[HZ + 10 :], HZ)
    assert (n1, n2) == (0, 1)


def test_day_steps__new_day_restarts_and_counter_resets_count_from_zero() -> None:
    d0 = 20_000 * DAY_MS
    st = activity.add_steps(DaySteps(), 100, d0 + 1)
    st = activity.add_steps(st, 50, d0 + 2)
    assert (st.day, st.steps_today) == (20_000, 150)
    st = activity.add_steps(st, 7, d0 + DAY_MS)
    assert (st.day, st.steps_today) == (20_001, 7)
    ctr = activity.add_counter(DaySteps(), 5_000, d0)  # first sight of the chip's counter
    ctr = activity.add_counter(ctr, 5_042, d0 + 1)
    ctr = activity.add_counter(ctr, 10, d0 + 2)  # the chip lost power and restarted at 0
    assert ctr.steps_today == 52 and ctr.counter == 10


def test_frozen() -> None:
    assert activity.frozen([(0.0, 0.0, 1.0)] * 10)
    assert not activity.frozen([(0.0, 0.0, 1.0)] * 9 + [(0.0, 0.001, 1.0)])
    assert not activity.frozen([(0.0, 0.0, 1.0)] * 5)

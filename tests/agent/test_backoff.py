from __future__ import annotations

import random

from agent.backoff import Backoff


def _max_delay(attempt: int, refused: bool) -> float:
    return max(
        Backoff(0.5, 30, 4, random.Random(s), attempt).next_delay(refused) for s in range(400)
    )


def test_full_jitter_window_doubles_up_to_the_cap() -> None:
    for attempt in range(10):
        bound = min(30.0, 0.5 * 2**attempt)
        observed = _max_delay(attempt, refused=False)
        assert 0.95 * bound < observed <= bound


def test_refusals_use_the_lower_ceiling() -> None:
    assert 3.8 < _max_delay(10, refused=True) <= 4.0
    assert _max_delay(10, refused=False) > 28


def test_reset_starts_over() -> None:
    b = Backoff(0.5, 30, 4, random.Random(3))
    for _ in range(8):
        b.next_delay(False)
    b.reset()
    assert b.next_delay(False) <= 0.5

"""Backoff: full jitter under an exponentially growing ceiling, capped, reset on success."""

import random

from backoff import Backoff

HEAPSIZE = "32k"


def test_delays_stay_in_the_growing_window_and_reach_it():
    random.seed(3)
    worst = [0] * 8
    for _ in range(200):
        b = Backoff(random.getrandbits, base_ms=100, cap_ms=3000)
        for attempt in range(8):
            delay = b.next_delay_ms()
            window = min(3000, 100 * 2**attempt)
            assert 0 <= delay <= window, (attempt, delay)
            worst[attempt] = max(worst[attempt], delay)
    # over 200 runs each window is nearly reached: the delays are spread, not fixed
    for attempt in range(8):
        assert worst[attempt] >= 0.9 * min(3000, 100 * 2**attempt), (attempt, worst)


def test_a_refused_connection_retries_under_the_lower_cap_and_reset_starts_over():
    b = Backoff(lambda bits: (1 << bits) - 1, base_ms=500, cap_ms=30000, refused_cap_ms=4000)
    delays = [b.next_delay_ms(refused=True) for _ in range(10)]
    assert delays[:4] == [500, 1000, 2000, 4000] and max(delays) == 4000
    assert b.next_delay_ms() == 30000
    b.reset()
    assert b.next_delay_ms() == 500

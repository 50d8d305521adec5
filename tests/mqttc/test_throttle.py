"""mqttc.throttle: at most one warning per reason per interval, the rest counted."""

from __future__ import annotations

import logging
import threading

import pytest

from mqttc.throttle import Admitted, Throttle


def test_the_first_of_a_reason_passes_then_the_rest_are_held_for_the_interval() -> None:
    t = Throttle(interval_ms=1_000)
    assert t.admit("bad_signature", 5_000) == Admitted(held_back=0, since_ms=5_000)
    assert [t.admit("bad_signature", ms) for ms in (5_000, 5_001, 5_999)] == [None] * 3
    # one interval after the last admitted one: through, with the count held back
    assert t.admit("bad_signature", 6_000) == Admitted(held_back=3, since_ms=5_000)
    assert t.admit("bad_signature", 6_999) is None
    assert t.admit("bad_signature", 9_000) == Admitted(held_back=1, since_ms=6_000)
    assert t.admit("bad_signature", 20_000) == Admitted(held_back=0, since_ms=9_000)


def test_reasons_are_throttled_apart() -> None:
    t = Throttle(interval_ms=1_000)
    assert t.admit("a", 0) is not None
    assert t.admit("b", 1) is not None
    assert t.admit("a", 2) is None
    assert t.admit("b", 3) is None
    assert t.admit("a", 1_000) == Admitted(1, 0)
    assert t.admit("b", 1_000) is None  # b's interval runs from 1
    assert t.admit("b", 1_001) == Admitted(2, 1)


def test_interval_zero_lets_everything_through_and_a_negative_one_is_refused() -> None:
    t = Throttle(interval_ms=0)
    assert all(t.admit("x", 7) == Admitted(0, 7) for _ in range(5))
    with pytest.raises(ValueError, match="interval_ms"):
        Throttle(interval_ms=-1)


def test_warn_logs_one_line_per_reason_and_interval_with_the_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("test.throttle")
    t = Throttle(interval_ms=60_000)
    with caplog.at_level(logging.WARNING, logger="test.throttle"):
        logged = [t.warn(log, "replay", ms, "dropped %s", f"m{ms}") for ms in range(0, 100)]
        assert logged == [True] + [False] * 99
        assert t.warn(log, "replay", 90_000, "dropped %s", "late")
        t.warn(log, "other", 90_001, "boom", level=logging.ERROR)
    lines = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert lines == [
        (logging.WARNING, "dropped m0"),
        (logging.WARNING, "dropped late (99 more replay in the last 90 s not logged)"),
        (logging.ERROR, "boom"),
    ]


def test_threads_sharing_a_throttle_lose_no_count() -> None:
    t = Throttle(interval_ms=1_000)
    admitted: list[Admitted] = []
    lock = threading.Lock()

    def hammer() -> None:
        for _ in range(2_000):
            a = t.admit("flood", 100)
            if a is not None:
                with lock:
                    admitted.append(a)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert admitted == [Admitted(0, 100)]
    assert t.admit("flood", 1_100) == Admitted(held_back=8_000 - 1, since_ms=100)

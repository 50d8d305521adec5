"""The send window's rules, one at a time, and its scenario under CPython and MicroPython."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from agent.window import IDLE, Plan, SendWindow, Tick
from tests.agent import window_scenario
from tests.firmware.conftest import find_micropython

ROOT = Path(__file__).resolve().parents[2]


def online(next_seq: int = 1, acked: int = 0, inflight_max: int = 8) -> SendWindow:
    """A connected window with the bridge online, on an outbox at `next_seq` acked to `acked`."""
    w = SendWindow(64, inflight_max, 10_000, 100)
    w.on_connected(0, next_seq, acked + 1, acked)
    assert w.on_bridge_state("bridge", 1, 1, True, 0)
    return w


def test_scenario_under_cpython() -> None:
    assert window_scenario.run() == 48


def test_scenario_under_micropython() -> None:
    exe = find_micropython()  # a dev dependency: its absence fails, it does not skip
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
        f"sys.path.insert(0, {str(ROOT / 'tests' / 'agent')!r}); "
        "import window_scenario; print(window_scenario.run())"
    )
    out = subprocess.run([exe, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "48"


def test_nothing_is_planned_while_disconnected_or_gated() -> None:
    w = SendWindow(64, 8, 10_000)
    assert w.plan() == IDLE
    w.on_connected(0, 5, 1, 0)
    assert w.plan() == IDLE  # connected, no bridge state yet
    assert w.on_bridge_state("b", 1, 1, True, 0)
    assert w.plan() == Plan(publish_lo=1, publish_hi=4)
    w.on_disconnected()
    assert (w.plan(), w.bridge_online) == (IDLE, False)


def test_the_window_never_goes_beyond_64_past_the_ack() -> None:
    w = online(next_seq=1, inflight_max=1000)
    assert w.plan() == Plan(number=64)
    w.numbered(1, 64)
    assert w.plan() == Plan(publish_lo=1, publish_hi=64)
    w.sent(64, [(s, s) for s in range(1, 65)])
    assert w.plan() == IDLE
    w.on_ack(10, 1)
    assert w.plan() == Plan(number=10)


def test_the_puback_limit_bounds_each_step() -> None:
    w = online(next_seq=101, acked=0, inflight_max=3)
    assert w.plan() == Plan(publish_lo=1, publish_hi=3)
    w.sent(3, [(1, 7), (2, 8), (3, 9)])
    assert w.plan() == IDLE
    w.on_puback(8)
    assert w.plan() == Plan(publish_lo=4, publish_hi=4)


def test_an_ack_is_believed_only_up_to_what_was_numbered() -> None:
    w = online(next_seq=6)
    assert w.on_ack(1_000_000, 5)
    assert w.acked == 5
    assert w.tick(6) == Tick(persist_ack=5)


@pytest.mark.parametrize(
    ("first", "last"),
    [(3, 4), (1, 0), (2, 1)],
)
def test_numbering_must_continue_where_it_stopped(first: int, last: int) -> None:
    w = online(next_seq=2)
    with pytest.raises(ValueError, match="expected to start at 2"):
        w.numbered(first, last)
    assert w.numbered_hi == 1  # unchanged


def test_a_reconnect_starts_after_the_highest_of_memory_and_outbox() -> None:
    w = online(next_seq=11, acked=2)
    w.on_ack(8, 1)  # not persisted yet: memory is ahead of the outbox
    w.on_connected(2, 11, 3, 2)
    assert (w.acked, w.sent_hi) == (8, 8)
    # An outbox moved aside resumes above numbers it no longer holds.
    w.on_connected(3, 500, 500, 0)
    assert (w.acked, w.numbered_hi) == (499, 499)


def test_stale_bridge_states_are_ignored_per_instance() -> None:
    w = online()
    assert w.on_bridge_state("a", 5, 10, True, 0)
    assert not w.on_bridge_state("a", 4, 99, False, 0)  # an old last will of instance a
    assert w.bridge_online
    assert w.on_bridge_state("b", 1, 1, False, 0)  # instance b's first state is news
    assert not w.bridge_online


@pytest.mark.parametrize(
    ("boot", "seq", "online", "taken"),
    [
        (5, 9, False, False),  # an offline older than the newest online: a replay
        (4, 500, False, False),  # an earlier boot, whatever its number
        (5, 9, True, False),  # an older online is no news either
        (5, 10, True, True),  # the same announcement again (a re-announcement)
        (5, 11, False, True),  # a newer offline: the will of this session
        (6, 1, False, True),  # a newer boot
    ],
)
def test_bridge_states_are_ordered_by_boot_then_seq(
    boot: int, seq: int, online: bool, taken: bool
) -> None:
    w = SendWindow(64, 8, 10_000, 100)
    w.on_connected(0, 1, 1, 0)
    assert w.on_bridge_state("a", 5, 10, True, 0)
    assert w.on_bridge_state("a", boot, seq, online, 1) is taken
    assert w.bridge_online is (online if taken else True)
    assert w.bridge_newest["a"] == ((boot, seq) if taken else (5, 10))


def test_without_a_valid_state_the_window_drains_only_while_acks_come() -> None:
    w = SendWindow(64, 8, 10_000, 100, state_timeout_ms=5_000)
    w.on_connected(0, 21, 1, 0)
    w.tick(4_999)
    assert (w.mode, w.plan()) == ("gated", IDLE)
    w.tick(5_000)
    assert (w.mode, w.plan()) == ("on_acks", Plan(publish_lo=1, publish_hi=1))
    w.sent(1, [(1, 1)])
    w.on_puback(1)
    assert w.plan() == IDLE  # nothing beyond the probe until its ack
    assert w.tick(15_001).timed_out  # no ack: the probe goes again, alone
    assert w.plan() == Plan(publish_lo=1, publish_hi=1)
    w.sent(1, [(1, 2)])
    w.on_puback(2)
    assert w.on_ack(1, 15_100)
    assert w.plan() == Plan(publish_lo=2, publish_hi=9)  # the PUBACK limit, not the probe


def test_a_reconnect_restarts_the_state_timer() -> None:
    w = SendWindow(64, 8, 10_000, 100, state_timeout_ms=5_000)
    w.on_connected(0, 3, 1, 0)
    w.tick(5_000)
    assert w.mode == "on_acks"
    w.on_disconnected()
    assert w.mode == "disconnected"
    w.on_connected(6_000, 3, 1, 0)
    w.tick(10_999)
    assert (w.mode, w.plan()) == ("gated", IDLE)


@pytest.mark.parametrize(
    ("window", "inflight_max", "ack_timeout_ms"),
    [(0, 8, 1), (64, 0, 1), (64, 8, 0)],
)
def test_bad_limits_are_refused(window: int, inflight_max: int, ack_timeout_ms: int) -> None:
    with pytest.raises(ValueError):
        SendWindow(window, inflight_max, ack_timeout_ms)


def test_a_bad_state_timeout_is_refused() -> None:
    with pytest.raises(ValueError, match="state_timeout_ms"):
        SendWindow(64, 8, 1, state_timeout_ms=0)

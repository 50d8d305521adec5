"""agent.timebase: time without a real-time clock (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agent import command_gate
from agent import timebase as tb

FLOOR = 1_764_288_000_000  # the last floor written before the power cut


def test_a_clock_that_boots_in_1970_never_goes_below_the_floor() -> None:
    state = tb.start(FLOOR)
    assert tb.wall(state, 5_000) == FLOOR
    assert not tb.trusted(state)
    assert tb.wall(state, FLOOR + 10) == FLOOR + 10  # a raw clock past the floor is taken


def test_bridge_time_corrects_and_makes_the_clock_trusted() -> None:
    state = tb.on_bridge_time(tb.start(FLOOR), FLOOR + 3_600_000, 5_000)
    assert state[tb.QUALITY] == tb.QUALITY_BRIDGE and tb.trusted(state)
    assert tb.wall(state, 6_000) == FLOOR + 3_601_000  # runs on from the bridge's time
    assert tb.on_bridge_time(state, 0, 7_000) == state  # a zero ts_ms is no time


def test_bridge_time_never_moves_backwards_within_a_boot() -> None:
    state = tb.on_bridge_time(tb.start(FLOOR), FLOOR + 3_600_000, 5_000)
    # an ack delayed in flight, stamped earlier than the one taken: the clock stays
    assert tb.on_bridge_time(state, FLOOR + 3_000, 6_000) == state
    later = tb.on_bridge_time(state, FLOOR + 3_700_000, 6_000)
    assert tb.wall(later, 6_000) == FLOOR + 3_700_000
    # a new boot starts afresh: a raw clock ahead (2099) may be corrected down once
    fresh = tb.on_bridge_time(tb.start(FLOOR), FLOOR + 10, 4_070_908_800_000)
    assert tb.wall(fresh, 4_070_908_800_000) == FLOOR + 10


def test_only_an_ack_of_this_boots_messages_sets_the_clock() -> None:
    assert not tb.answers_this_boot(41, 42)  # queued in the persistent session before the boot
    assert tb.answers_this_boot(42, 42) and tb.answers_this_boot(50, 42)


def test_ntp_rules_over_the_bridge() -> None:
    state = tb.on_ntp(tb.on_bridge_time(tb.start(FLOOR), FLOOR + 99, 5), True)
    assert state[tb.QUALITY] == tb.QUALITY_NTP and state[tb.OFFSET] == 0
    assert tb.on_bridge_time(state, 1, 2) == state
    lost = tb.on_ntp(state, False)
    assert lost[tb.QUALITY] == tb.QUALITY_BRIDGE and tb.trusted(lost)
    assert tb.on_ntp(tb.start(FLOOR), False) == tb.start(FLOOR)


def test_the_floor_is_written_at_most_every_interval_and_only_forward() -> None:
    state = tb.on_ntp(tb.start(FLOOR), True)
    assert tb.floor_due(state, FLOOR + tb.FLOOR_EVERY_MS - 1) == 0
    due = tb.floor_due(state, FLOOR + tb.FLOOR_EVERY_MS)
    assert due == FLOOR + tb.FLOOR_EVERY_MS
    state = tb.floor_written(state, due)
    assert tb.floor_due(state, due + 1) == 0
    assert tb.floor_due(tb.start(FLOOR), 5_000) == 0  # stuck at the floor: nothing to write


@given(st.lists(st.tuples(st.integers(0, 10**13), st.booleans(), st.integers(0, 10**13))))
def test_wall_time_never_runs_backwards_across_reboots(steps: list[tuple[int, bool, int]]) -> None:
    """Each step: the raw clock after a reboot (any value), maybe a bridge time; the wall time
    seen after a reboot is never below what was persisted before it."""
    floor = FLOOR
    for raw, got_bridge, bridge in steps:
        state = tb.start(floor)
        if got_bridge:
            state = tb.on_bridge_time(state, bridge, raw)
        assert tb.wall(state, raw) >= floor
        due = tb.floor_due(state, raw + tb.FLOOR_EVERY_MS)
        if due:
            floor = due


def test_expiry_is_held_until_the_clock_is_trusted() -> None:
    """A device whose raw clock came up in 2099 would call every command expired."""
    in_2099 = 4_070_908_800_000
    state = tb.start(FLOOR)
    expires = FLOOR + 60_000
    held = command_gate.gate(expires, False, tb.wall(state, in_2099), tb.trusted(state))
    assert held == command_gate.HOLD
    state = tb.on_bridge_time(state, FLOOR + 500, in_2099)  # the first ack's time
    now = tb.wall(state, in_2099 + 100)
    assert now == FLOOR + 600
    assert command_gate.gate(expires, False, now, tb.trusted(state)) == command_gate.APPLY

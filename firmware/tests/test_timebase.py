"""The time base and the command gate shared with the agent (agent/timebase.py,
agent/command_gate.py), in MicroPython: a board without a real-time clock after a power cut."""

import command_gate
import timebase

HEAPSIZE = "32k"
FLOOR = 1764288000000
IN_2099 = 4070908800000


def test_the_floor_holds_and_expiry_waits_for_the_bridge_time():
    state = timebase.start(FLOOR)
    assert timebase.wall(state, 0) == FLOOR  # booted in 1970: never below the floor
    expires = FLOOR + 60000
    now = timebase.wall(state, IN_2099)  # booted in 2099: everything would look expired
    assert command_gate.gate(expires, False, now, timebase.trusted(state)) == command_gate.HOLD
    state = timebase.on_bridge_time(state, FLOOR + 500, IN_2099)
    now = timebase.wall(state, IN_2099 + 100)
    assert now == FLOOR + 600
    assert command_gate.gate(expires, False, now, timebase.trusted(state)) == command_gate.APPLY
    assert command_gate.gate(0, True, now, True) == command_gate.RETAINED


def test_the_floor_is_written_at_most_every_interval():
    state = timebase.on_bridge_time(timebase.start(FLOOR), FLOOR, 0)
    assert timebase.floor_due(state, timebase.FLOOR_EVERY_MS - 1) == 0
    due = timebase.floor_due(state, timebase.FLOOR_EVERY_MS)
    assert due == FLOOR + timebase.FLOOR_EVERY_MS
    state = timebase.floor_written(state, due)
    assert timebase.floor_due(state, timebase.FLOOR_EVERY_MS + 1) == 0


def test_a_stale_ack_does_not_set_the_clock_back():
    state = timebase.on_bridge_time(timebase.start(FLOOR), FLOOR + 3600000, 0)
    assert timebase.on_bridge_time(state, FLOOR, 1000) == state  # earlier time: kept
    assert not timebase.answers_this_boot(6, 7)  # an ack of a message from before the boot
    assert timebase.answers_this_boot(7, 7)

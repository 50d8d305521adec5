"""Time without a real-time clock (issue 18 item 6): pure functions on a small state.

A device without a battery-backed clock (an ESP32 after a power cut, a Linux box before NTP)
starts with a wrong wall clock, often 1970 or the build date. Three rules:

- a persisted floor: wall time is never earlier than the last floor written (written at most
  every FLOOR_EVERY_MS, so flash is not worn), so timestamps never run backwards over a reboot;
- a quality flag, carried in reports until the clock is trusted: QUALITY_FLOOR (nothing but the
  floor), QUALITY_BRIDGE (the bridge's time, from the ts_ms of its signed acks), QUALITY_NTP;
- checks that depend on wall time (command expiry, key validity) are held, not failed, until the
  clock is trusted (agent.command_gate's HOLD), so a device that boots in 1970 does not refuse
  every command as "not yet valid", nor one that boots in 2099 apply expired ones.

Written in the subset of Python that MicroPython runs (no dataclasses, no typing at run time):
the firmware carries the same functions. The state is a tuple (floor_ms, offset_ms, quality,
written_ms); every function returns a new one.
"""

QUALITY_FLOOR = 0
QUALITY_BRIDGE = 1
QUALITY_NTP = 2
FLOOR_EVERY_MS = 60_000
"""The floor is persisted at most this often (and only when it moved)."""

FLOOR, OFFSET, QUALITY, WRITTEN = 0, 1, 2, 3


def start(floor_ms: int) -> tuple[int, int, int, int]:
    """The state at boot: the persisted floor, no correction, quality unknown."""
    return (floor_ms, 0, QUALITY_FLOOR, floor_ms)


def wall(state: tuple[int, int, int, int], raw_ms: int) -> int:
    """Wall time: the raw clock corrected by the bridge's offset, never below the floor."""
    now = raw_ms + state[OFFSET]
    return now if now > state[FLOOR] else state[FLOOR]


def on_ntp(state: tuple[int, int, int, int], synced: bool) -> tuple[int, int, int, int]:
    """The system clock says whether NTP has synchronised it: then the raw clock is right."""
    if synced:
        return (state[FLOOR], 0, QUALITY_NTP, state[WRITTEN])
    if state[QUALITY] == QUALITY_NTP:  # lost sync: the raw clock still ran right until now
        return (state[FLOOR], 0, QUALITY_BRIDGE, state[WRITTEN])
    return state


def answers_this_boot(ack_seq: int, boot_first_seq: int) -> bool:
    """Whether an ack's ts_ms may set the clock: only an ack of a message sent in this boot
    (seq >= the first seq numbered in this boot). An older ack may have waited hours in the
    broker's persistent session; its ts_ms would set the clock back and let expired commands
    through."""
    return ack_seq >= boot_first_seq


def on_bridge_time(
    state: tuple[int, int, int, int], bridge_ms: int, raw_ms: int
) -> tuple[int, int, int, int]:
    """The ts_ms of a signed bridge ack (one that answers_this_boot): take the bridge's clock
    unless NTP already rules, and never move it backwards within a boot (an ack delayed in
    flight carries an older time than one already taken). The ack's age in flight (seconds)
    is far below what this is for (years off after a cut)."""
    if state[QUALITY] == QUALITY_NTP or bridge_ms <= 0:
        return state
    offset = bridge_ms - raw_ms
    if state[QUALITY] == QUALITY_BRIDGE and offset <= state[OFFSET]:
        return state
    return (state[FLOOR], offset, QUALITY_BRIDGE, state[WRITTEN])


def trusted(state: tuple[int, int, int, int]) -> bool:
    """Whether checks that depend on wall time may be decided now."""
    return state[QUALITY] >= QUALITY_BRIDGE


def floor_due(state: tuple[int, int, int, int], raw_ms: int) -> int:
    """The floor to persist now (0: nothing to write): wall time, when it moved past the floor
    and FLOOR_EVERY_MS passed since the last write."""
    now = wall(state, raw_ms)
    if now > state[FLOOR] and now - state[WRITTEN] >= FLOOR_EVERY_MS:
        return now
    return 0


def floor_written(state: tuple[int, int, int, int], floor_ms: int) -> tuple[int, int, int, int]:
    """The state once `floor_ms` (from floor_due) is durably written."""
    return (floor_ms, state[OFFSET], state[QUALITY], floor_ms)

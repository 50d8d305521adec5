"""Whether a verified, replay-checked command may be applied now: pure, on values.

A command is never applied from a retained message (a retained command would be applied again
after every reconnect, Tasmota's failure), nor after its `expires_ms` by a wall clock the device
trusts. Before the wall clock is trusted (no NTP yet, no bridge time from an ack: a device
without a real-time clock after a power cut), an expiring command is held, not refused: the
caller keeps it and asks again once the clock is trusted (issue 18 item 6).

Written in the subset of Python that MicroPython runs, like agent/window.py.
"""

APPLY = "apply"
RETAINED = "command_retained"
EXPIRED = "command_expired"
HOLD = "command_held"
"""Verdicts; the refusals double as the reason codes the link counts and logs."""


def gate(expires_ms: int, retained: bool, now_ms: int, trusted: bool) -> str:
    """APPLY, RETAINED, EXPIRED or HOLD for a command with `expires_ms` (0: never expires),
    received as a retained message or not, at wall time `now_ms` of a clock `trusted` or not."""
    if retained:
        return RETAINED
    if expires_ms == 0:
        return APPLY
    if not trusted:
        return HOLD
    if now_ms > expires_ms:
        return EXPIRED
    return APPLY

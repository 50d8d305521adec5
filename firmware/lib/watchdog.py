"""The watchdog, fed only on progress: machine.WDT on the ESP32 (a hung loop resets the board),
StubWDT in the unix port. The rule is the Linux agent's (agent/watchdog.py `verdict`): feed
while the sensor answers, and the outbox drains (an ack advanced), or is empty, or the link
cannot send and keeps trying (an outage is not a hang: it must not reset the board).

    dog = Watchdog(machine.WDT(timeout=WDT_TIMEOUT_MS), now_ms)
    dog.sensed(now_ms)     the IMU answered (a report or trigger was made)
    dog.drained(now_ms)    the bridge's ack advanced
    dog.beat(now_ms)       the link made an attempt or handled a packet
    dog.check(now_ms, backlog, can_send)   once per loop: feeds when the rule says so
"""

import time

WDT_TIMEOUT_MS = 60000
"""machine.WDT's timeout on the board; progress must be within half of it."""

PROGRESS = "progress"
SENSOR_STALLED = "sensor_stalled"
OUTBOX_STALLED = "outbox_stalled"
LINK_STALLED = "link_stalled"


def verdict(now_ms, window_ms, sensor_ok_ms, backlog, drained_ms, link_beat_ms, can_send):
    """agent/watchdog.py `verdict` on ticks_ms values (ticks_diff: they wrap)."""
    if time.ticks_diff(now_ms, sensor_ok_ms) > window_ms:
        return SENSOR_STALLED
    if time.ticks_diff(now_ms, link_beat_ms) > window_ms:
        return LINK_STALLED
    if backlog > 0 and can_send and time.ticks_diff(now_ms, drained_ms) > window_ms:
        return OUTBOX_STALLED
    return PROGRESS


class StubWDT:
    """machine.WDT's interface, counting feeds (the unix port has no watchdog)."""

    def __init__(self, timeout=0):
        self.timeout = timeout
        self.feeds = 0

    def feed(self):
        self.feeds += 1


class Watchdog:
    def __init__(self, wdt, now_ms, window_ms=WDT_TIMEOUT_MS // 2):
        self.wdt = wdt
        self.window_ms = window_ms
        self.sensor_ok_ms = self.drained_ms = self.link_beat_ms = now_ms
        self.last = PROGRESS

    def sensed(self, now_ms):
        self.sensor_ok_ms = now_ms

    def drained(self, now_ms):
        self.drained_ms = now_ms

    def beat(self, now_ms):
        self.link_beat_ms = now_ms

    def check(self, now_ms, backlog, can_send):
        """Feed the WDT if the rule says PROGRESS; the verdict either way."""
        self.last = verdict(
            now_ms, self.window_ms, self.sensor_ok_ms, backlog, self.drained_ms,
            self.link_beat_ms, can_send,
        )  # fmt: skip
        if self.last == PROGRESS:
            self.wdt.feed()
        return self.last

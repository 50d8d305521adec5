"""A millisecond clock on the board's crystal that never wraps (device.py's mono_ms).

    clock = MonoClock(hw.ticks_ms)
    clock.read()    ms since the clock was made
"""

import time


class MonoClock:
    """Milliseconds on the board's crystal since boot, never wrapping: ticks_ms wraps at 2**30
    ms (12.4 days) on the ESP32, and a wrapped mono_ms would look to the bridge's clone check
    like a clock running backwards. Read at least every 2**29 ms (every report does), so that
    ticks_diff sees each step whole."""

    def __init__(self, ticks_ms):
        self._ticks_ms = ticks_ms
        self._last = ticks_ms()
        self._ms = self._last

    def read(self):
        now = self._ticks_ms()
        self._ms += time.ticks_diff(now, self._last)
        self._last = now
        return self._ms

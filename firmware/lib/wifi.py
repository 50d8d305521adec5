"""Wi-Fi kept up with jittered backoff (backoff.Backoff), over a WLAN passed in: network.WLAN
(STA_IF) on the ESP32, NoWLAN in the unix port (the host's network is already there).

    w = Wifi(wlan, ssid, password, backoff)
    w.step(now_ms)    True while associated; starts an attempt when one is due
"""

import time

CONNECT_TIMEOUT_MS = 15000


class NoWLAN:
    """The unix port's stand-in: always connected, nothing to configure."""

    def active(self, on=None):
        return True

    def isconnected(self):
        return True

    def connect(self, ssid, password):
        pass

    def disconnect(self):
        pass


class Wifi:
    def __init__(self, wlan, ssid, password, backoff):
        self.wlan = wlan
        self.ssid = ssid
        self.password = password
        self.backoff = backoff
        self.attempts = 0
        self._started_ms = None  # an attempt in progress since then
        self._next_ms = None  # None: try at once

    def step(self, now_ms):
        if self.wlan.isconnected():
            if self._started_ms is not None:
                self.backoff.reset()
                self._started_ms = None
            return True
        if self._started_ms is not None:
            if time.ticks_diff(now_ms, self._started_ms) < CONNECT_TIMEOUT_MS:
                return False
            self._started_ms = None  # this attempt timed out: back off
            self.wlan.disconnect()
            self._next_ms = time.ticks_add(now_ms, self.backoff.next_delay_ms(False))
            return False
        if self._next_ms is not None and time.ticks_diff(now_ms, self._next_ms) < 0:
            return False
        self.attempts += 1
        self.wlan.active(True)
        try:
            self.wlan.connect(self.ssid, self.password)
            self._started_ms = now_ms
        except OSError:
            self._next_ms = time.ticks_add(now_ms, self.backoff.next_delay_ms(False))
        return False

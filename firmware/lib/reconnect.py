"""Keeps an MQTT client connected: reconnect attempts spaced by jittered backoff (policy apart
from the mechanism in mqtt.py).

    r = Reconnector(client, backoff, connect_args={"will": ...}, on_connect=subscribe_all)
    r.step(now_ms)      connect when due; True while connected
    r.lost(now_ms)      the caller saw the connection fail: schedule the next attempt

A failed attempt schedules the next one after backoff.next_delay_ms(refused), refused being a
TCP reset or refusal from a live host (ECONNREFUSED, ECONNRESET): only the broker restarts.
"""

import time

from mqtt import MQTTError

_REFUSED = (104, 111)  # ECONNRESET, ECONNREFUSED


class Reconnector:
    def __init__(self, client, backoff, connect_args=None, on_connect=None):
        self.client = client
        self.backoff = backoff
        self.connect_args = connect_args or {}
        self.on_connect = on_connect
        self.next_attempt_ms = None  # None: try at once
        self.attempts = 0
        self.connects = 0
        self.last_error = None

    def step(self, now_ms):
        if self.client.connected:
            return True
        if self.next_attempt_ms is not None and time.ticks_diff(now_ms, self.next_attempt_ms) < 0:
            return False
        self.attempts += 1
        try:
            session_present = self.client.connect(**self.connect_args)
            if self.on_connect is not None:
                self.on_connect(session_present)
        except (OSError, MQTTError) as exc:
            self.client.close()
            self._schedule(now_ms, exc)
            return False
        self.backoff.reset()
        self.connects += 1
        self.next_attempt_ms = None
        return True

    def lost(self, now_ms, exc=None):
        self.client.close()
        self._schedule(now_ms, exc)

    def _schedule(self, now_ms, exc):
        self.last_error = exc
        refused = isinstance(exc, OSError) and bool(exc.args) and exc.args[0] in _REFUSED
        self.next_attempt_ms = time.ticks_add(now_ms, self.backoff.next_delay_ms(refused))

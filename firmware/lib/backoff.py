"""Reconnect delays: exponential backoff with full jitter, as the Linux agent's agent/backoff.py.

Full jitter (delay = uniform(0, min(ceiling, base * 2**attempt))) spreads a fleet's reconnects
so that a broker coming back is not hit by every device at once. The ceiling is `cap_ms` for
timeouts and refusals, and the lower `refused_cap_ms` for a TCP reset from a live host (only
the broker process is restarting). Pure: the random source is passed in.

    b = Backoff(rand=random.getrandbits)
    b.next_delay_ms(refused)    after a failed attempt
    b.reset()                   after a successful connect
"""


class Backoff:
    def __init__(self, rand, base_ms=500, cap_ms=30000, refused_cap_ms=4000):
        self._rand = rand  # rand(bits) -> an integer of that many random bits
        self.base_ms = base_ms
        self.cap_ms = cap_ms
        self.refused_cap_ms = refused_cap_ms
        self.attempt = 0

    def next_delay_ms(self, refused=False):
        """Milliseconds to wait before the next attempt, after a failed one."""
        ceiling = self.refused_cap_ms if refused else self.cap_ms
        window = min(ceiling, self.base_ms << min(self.attempt, 20))
        self.attempt += 1
        # uniform on 0..window: 24 random bits scaled (rand(n) gives at most 32 bits)
        return (self._rand(24) * (window + 1)) >> 24

    def reset(self):
        self.attempt = 0

"""Reconnect delays: exponential backoff with full jitter, whose ceiling depends on the failure.

Full jitter (delay = uniform(0, min(ceiling, base * 2**attempt))) spreads a fleet's reconnects
so that a broker coming back is not hit by all devices at once. The ceiling is `cap_s` (default
30 s) for timeouts, unreachable networks and MQTT-level refusals, where the far side is down or
struggling. A TCP reset from a live host means only the broker process is restarting: answering
it costs the host nothing, so those retries use the lower `refused_cap_s` (default 4 s), and the
device is back within seconds of the broker instead of up to half a minute later.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    base_s: float = 0.5
    cap_s: float = 30.0
    refused_cap_s: float = 4.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self, refused: bool) -> float:
        """Seconds to wait before the next attempt, after a failed one."""
        ceiling = self.refused_cap_s if refused else self.cap_s
        window = min(ceiling, self.base_s * 2 ** min(self.attempt, 32))
        self.attempt += 1
        return self.rng.uniform(0, window)

    def reset(self) -> None:
        """Call after a successful connect."""
        self.attempt = 0

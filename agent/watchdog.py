"""systemd's watchdog, fed only while the agent makes progress.

The unit runs the agent with `Type=notify` and `WatchdogSec=`: the agent says READY=1 once its
parts are up, then WATCHDOG=1 at half the watchdog interval, but only while `verdict()` says it
is moving forward: its sensors answer, and its outbox drains (or is empty, or the link is busy
getting a connection back). A main loop or link thread that hangs stops the notifications, and
systemd kills and restarts the agent after `WatchdogSec`.

The rule is a pure function of a `Progress` snapshot and the time; `Notifier` is the datagram
sender (sd_notify(3) over NOTIFY_SOCKET, no libsystemd), and `Feeder` joins the two.
"""

from __future__ import annotations

import enum
import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

NOTIFY_SOCKET = "NOTIFY_SOCKET"
WATCHDOG_USEC = "WATCHDOG_USEC"
WATCHDOG_PID = "WATCHDOG_PID"


class Verdict(enum.Enum):
    """Why the watchdog is (or is not) fed."""

    PROGRESS = "progress"
    SENSOR_STALLED = "sensor_stalled"  # no sensor poll returned within the window
    OUTBOX_STALLED = "outbox_stalled"  # a backlog, a link able to send, and nothing acked
    LINK_STALLED = "link_stalled"  # the link thread stopped looping (hung in a call)


@dataclass(frozen=True)
class Progress:
    """What the agent last saw move, on its monotonic clock (milliseconds).

    `drained_ms`: when the outbox last shrank or the bridge's ack last advanced;
    `link_beat_ms`: when the link thread last went round its loop (a connect attempt, a
    network read); `link_can_send`: connected to a broker with the bridge online, so a backlog
    that does not drain is the agent's fault, not an outage."""

    sensor_ok_ms: int
    backlog: int
    drained_ms: int
    link_beat_ms: int
    link_can_send: bool


def verdict(p: Progress, now_ms: int, window_ms: int) -> Verdict:
    """Feed the watchdog only if every part moved within the last `window_ms`.

    An outage is not a hang: while the link cannot send (disconnected, or the bridge offline)
    a backlog is expected, and the link thread's beat is the progress that counts (its connect
    attempts; a hung broker connection is dropped by the MQTT keepalive and becomes attempts)."""
    if now_ms - p.sensor_ok_ms > window_ms:
        return Verdict.SENSOR_STALLED
    if now_ms - p.link_beat_ms > window_ms:
        return Verdict.LINK_STALLED
    if p.backlog > 0 and p.link_can_send and now_ms - p.drained_ms > window_ms:
        return Verdict.OUTBOX_STALLED
    return Verdict.PROGRESS


class Notifier:
    """sd_notify(3): one datagram per state change to the unix socket in NOTIFY_SOCKET (a path,
    or an abstract name starting with '@'). Without NOTIFY_SOCKET (not under systemd) every
    call does nothing. A failed send is logged, never raised: the agent's work comes first."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        address = env.get(NOTIFY_SOCKET, "")
        if address.startswith("@"):
            address = "\0" + address[1:]  # the abstract namespace (sd_notify(3))
        self.address = address
        self.interval_ms = _watchdog_interval_ms(env)
        self.sent = 0
        self._sock: socket.socket | None = None
        if address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.setblocking(False)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, state: str) -> bool:
        """Send e.g. "READY=1" or "WATCHDOG=1"; True when it went out."""
        if self._sock is None:
            return False
        try:
            self._sock.sendto(state.encode(), self.address)
        except OSError as exc:
            log.warning("sd_notify %s to %r failed: %s", state, self.address, exc)
            return False
        self.sent += 1
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _watchdog_interval_ms(env: Mapping[str, str]) -> int:
    """WATCHDOG_USEC in milliseconds, 0 when unset, invalid or meant for another process."""
    pid = env.get(WATCHDOG_PID, "")
    if pid and pid != str(os.getpid()):
        return 0
    try:
        usec = int(env.get(WATCHDOG_USEC, "0"))
    except ValueError:
        return 0
    return max(usec // 1000, 0)


class Feeder:
    """Checks `verdict` every quarter of the watchdog interval and feeds while it says PROGRESS.

    Progress must be recent within half the interval, so a part that stalls stops the feeding
    within half an interval, and systemd acts one interval after the last feed."""

    def __init__(self, notifier: Notifier, default_interval_ms: int = 0) -> None:
        self.notifier = notifier
        self.interval_ms = notifier.interval_ms or default_interval_ms
        self.last_check_ms: int | None = None
        self.last: Verdict = Verdict.PROGRESS

    @property
    def window_ms(self) -> int:
        return max(self.interval_ms // 2, 1)

    def ready(self) -> None:
        self.notifier.notify("READY=1")

    def due(self, now_ms: int) -> bool:
        """Time for a check (a snapshot of progress costs a database read: not every loop)."""
        if not self.interval_ms:
            return False
        return self.last_check_ms is None or now_ms - self.last_check_ms >= self.interval_ms // 4

    def step(self, p: Progress, now_ms: int) -> Verdict:
        """Check the rule; feed when it says PROGRESS. A change of verdict is logged."""
        self.last_check_ms = now_ms
        found = verdict(p, now_ms, self.window_ms)
        if found is not self.last:
            if found is Verdict.PROGRESS:
                log.info("watchdog: progress again; feeding")
            else:
                log.warning("watchdog: %s; not feeding", found.value)
            self.last = found
        if found is Verdict.PROGRESS:
            self.notifier.notify("WATCHDOG=1")
        return found

    def stopping(self) -> None:
        self.notifier.notify("STOPPING=1")
        self.notifier.close()

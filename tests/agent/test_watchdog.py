"""The progress watchdog (issue 18 item 3): the pure rule, sd_notify over a real unix datagram
socket, and a real agent process whose notifications stop when its outbox stops draining."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import nacl.signing
import pytest

from agent.watchdog import Feeder, Notifier, Progress, Verdict, verdict
from tests.agent.harness import provision, wait
from tests.agent.standin import BRIDGE_SEED
from tests.agent.test_agent_e2e import standin_for
from tests.harness.mosquitto import Mosquitto

NOW = 100_000
WINDOW = 1_000


def progress(**kw: object) -> Progress:
    base: dict[str, object] = dict(
        sensor_ok_ms=NOW, backlog=0, drained_ms=0, link_beat_ms=NOW, link_can_send=True
    )
    base.update(kw)
    return Progress(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("snapshot", "expected"),
    [
        (progress(), Verdict.PROGRESS),  # nothing to drain
        (progress(backlog=5, drained_ms=NOW - WINDOW), Verdict.PROGRESS),  # drained just now
        (progress(backlog=5, drained_ms=NOW - WINDOW - 1), Verdict.OUTBOX_STALLED),
        # an outage is not a hang: the link cannot send and keeps trying
        (progress(backlog=5, link_can_send=False), Verdict.PROGRESS),
        (progress(backlog=5, link_can_send=False, link_beat_ms=NOW - WINDOW - 1),
         Verdict.LINK_STALLED),
        (progress(link_beat_ms=NOW - WINDOW - 1), Verdict.LINK_STALLED),
        (progress(sensor_ok_ms=NOW - WINDOW - 1), Verdict.SENSOR_STALLED),
        (progress(sensor_ok_ms=NOW - WINDOW), Verdict.PROGRESS),
    ],
)  # fmt: skip
def test_verdict(snapshot: Progress, expected: Verdict) -> None:
    assert verdict(snapshot, NOW, WINDOW) is expected


class Inbox:
    """A real NOTIFY_SOCKET: a bound unix datagram socket, read by a thread."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.path = path
        self.got: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.got.append((time.monotonic(), data.decode()))

    def count(self, state: str, since: float = 0.0) -> int:
        return sum(1 for t, s in list(self.got) if s == state and t >= since)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def test_notifier_sends_datagrams_to_notify_socket(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path / "notify")
    try:
        env = {"NOTIFY_SOCKET": str(inbox.path), "WATCHDOG_USEC": "4000000"}
        notifier = Notifier(env)
        assert notifier.interval_ms == 4000
        feeder = Feeder(notifier)
        feeder.ready()
        assert feeder.step(progress(), NOW) is Verdict.PROGRESS
        stalled = progress(backlog=3, drained_ms=NOW - 10_000)
        assert not feeder.due(NOW + 999)  # checks every quarter interval
        assert feeder.due(NOW + 1000)
        assert feeder.step(stalled, NOW + 1000) is Verdict.OUTBOX_STALLED
        feeder.stopping()
        assert wait(lambda: len(inbox.got) == 3, 5)
        assert [s for _t, s in inbox.got] == ["READY=1", "WATCHDOG=1", "STOPPING=1"]
    finally:
        inbox.close()


def test_notifier_without_systemd_does_nothing() -> None:
    notifier = Notifier({})
    assert not notifier.enabled and not notifier.notify("READY=1")
    assert not Feeder(notifier).due(NOW)  # no interval: never checks, never feeds
    other = Notifier({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid() + 1)})
    assert other.interval_ms == 0  # meant for another process


@pytest.mark.broker
def test_agent_stops_feeding_when_its_outbox_stops_draining(
    tmp_path: Path, broker: Mosquitto
) -> None:
    bridge_hex = bytes(nacl.signing.SigningKey(BRIDGE_SEED).verify_key).hex()
    dev = provision(tmp_path, "wd-1", "phone", broker.url, bridge_hex, interval_s=0.1)
    bridge = standin_for(broker, dev)
    inbox = Inbox(tmp_path / "notify")
    # 2 s interval: progress must be under 1 s old, checked every 0.5 s
    env = {"NOTIFY_SOCKET": str(inbox.path), "WATCHDOG_USEC": "2000000"}
    try:
        dev.start(env=env)
        assert wait(lambda: inbox.count("READY=1") == 1, 30), dev.log()[-2000:]
        assert wait(lambda: inbox.count("WATCHDOG=1") >= 4, 30), dev.log()[-2000:]
        bridge.ack_enabled = False  # reports pile up and the bridge acks nothing
        assert wait(lambda: "watchdog: outbox_stalled" in dev.log(), 30), dev.log()[-2000:]
        stalled_at = time.monotonic()
        time.sleep(3)  # longer than the watchdog interval: systemd would restart it now
        assert inbox.count("WATCHDOG=1", since=stalled_at) == 0
        bridge.ack_enabled = True  # the stand-in acks again: the backlog drains
        assert wait(lambda: inbox.count("WATCHDOG=1", since=stalled_at) >= 2, 60), dev.log()
        assert "watchdog: progress again" in dev.log()
    finally:
        if dev.proc:
            dev.stop()
        bridge.stop()
        inbox.close()
    assert inbox.count("STOPPING=1") == 1

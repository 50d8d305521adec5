"""The activity scene: steps and falls from the IMU the device already has.

A thread samples the accelerometer (MPU-6050 over I2C or an IIO accelerometer, through their
`read_accel_g`) at `activity_hz` in one-second batches. Each batch goes to the fall detector;
every WINDOW_S seconds of batches are classified (agent.activity.classify_g: rest, walk or run)
and a walk's or run's steps are added to the day, so fidgeting, a car's vibration or a racket
sport add none. Where the IIO device has a step counter of its own (`in_steps_input`, as
BMA400/BMI160-class wearable IMUs expose), the day's steps come from it and the stream only
looks for falls.

Telemetry `day` and `steps_today` (what the health_streak rule reads); a fall is an Event with
source "fall" (what an emergency rule with fall_detection = true fires on). The day's count is
kept in `<data_dir>/activity.json` so a restart does not lose it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from agent import activity
from agent.activity import DaySteps, FallState
from agent.errors import AgentError
from agent.jsonfile import write_json_atomic
from agent.sensors.faults import Fault
from agent.sensors.scenes import FaultEpisodes, SceneReading
from agent.triggers import Event

log = logging.getLogger(__name__)

NAME = "activity"
STATE_FILE = "activity.json"
WINDOW_S = 5  # one-second batches per classified window (agent.activity.WINDOW_S allows 5-10)


class Accelerometer(Protocol):
    def read_accel_g(self) -> tuple[float, float, float]: ...


class ActivityReader:
    """The activity scene reader (see the module docstring)."""

    name = NAME

    def __init__(
        self,
        accel: Accelerometer,
        rate_hz: int,
        data_dir: Path,
        *,
        device: Path | None = None,
        step_counter: Callable[[], int] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        retry_s: float = 1.0,
        start: bool = True,
    ) -> None:
        self.accel, self.rate_hz, self.device = accel, rate_hz, device
        self.step_counter, self.sleep, self.wall_ms = step_counter, sleep, wall_ms
        self.retry_s = retry_s  # the pause after a failed batch
        self.state_file = data_dir / STATE_FILE
        self.falls = FallState()
        self.window: list[tuple[float, float, float]] = []  # this thread's only
        self.unsaved = False  # the last save of the day's steps failed
        self.day = self._load()
        self._lock = threading.Lock()
        self._episodes = FaultEpisodes()
        self._faults: frozenset[Fault] = frozenset()
        self._began: list[Fault] = []
        self._events: list[Event] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="activity", daemon=True)
        if start:
            self._thread.start()

    def _load(self) -> DaySteps:
        try:
            doc = json.loads(self.state_file.read_text())
            return DaySteps(int(doc["day"]), int(doc["steps_today"]), doc.get("counter"))
        except FileNotFoundError:
            return DaySteps()
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("starting the day's steps afresh: %s unreadable (%s)", self.state_file, exc)
            return DaySteps()

    def read(self, now_ms: int) -> SceneReading:
        with self._lock:
            began, self._began = tuple(self._began), []
            events, self._events = tuple(self._events), []
            day = self.day
            ok = not self._faults
        telemetry = {"day": day.day, "steps_today": day.steps_today} if day.day >= 0 else {}
        return SceneReading(telemetry, began, ok, events)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample_once()
            except Exception:  # the reader must never die silently and freeze its values
                log.exception("activity: unexpected error; counted as a read fault")
                self._publish({Fault.READ}, None, 0)
                self._stop.wait(self.retry_s)

    def sample_once(self) -> None:
        """One second of samples, folded into the detectors (the thread's body)."""
        samples: list[tuple[float, float, float]] = []
        faults: set[Fault] = set()
        counter = None
        try:
            for _ in range(self.rate_hz):
                samples.append(self.accel.read_accel_g())
                self.sleep(1.0 / self.rate_hz)
            if self.step_counter is not None:
                counter = self.step_counter()
        except (AgentError, OSError, ValueError) as exc:
            gone = self.device is not None and not self.device.exists()
            faults.add(Fault.UNPLUGGED if gone else Fault.READ)
            log.warning("activity: %s", exc)
            self._publish(faults, None, 0)
            self._stop.wait(self.retry_s)
            return
        if activity.frozen(samples):
            self._publish({Fault.STUCK}, None, 0)
            return
        g = activity.magnitudes(samples)
        self.falls, falls = activity.detect_falls(self.falls, g, self.rate_hz)
        self.window += samples
        steps = 0
        if len(self.window) >= WINDOW_S * self.rate_hz:
            steps = activity.classify_g(self.window, self.rate_hz).steps
            self.window = []
        ts = self.wall_ms()
        day = (
            activity.add_counter(self.day, counter, ts)
            if counter is not None
            else activity.add_steps(self.day, steps, ts)
        )
        self._publish(faults, day, falls)

    def _publish(self, faults: set[Fault], day: DaySteps | None, falls: int) -> None:
        faults = set(faults)
        # self.day and self.unsaved are written by this thread only. A state that could not be
        # saved is tried again every batch (steps now come every WINDOW_S seconds, not every
        # batch), and the fault stays until a save succeeds.
        if day is not None and (day != self.day or self.unsaved):
            doc = {"day": day.day, "steps_today": day.steps_today, "counter": day.counter}
            try:
                write_json_atomic(self.state_file, doc, durable=False)
                self.unsaved = False
            except OSError as exc:  # a full or read-only card: keep counting, say so
                log.warning("activity: cannot save %s: %s", self.state_file, exc)
                faults.add(Fault.READ)
                self.unsaved = True
        with self._lock:
            self._began.extend(self._episodes.update(frozenset(faults)))
            self._faults = frozenset(faults)
            self._events.extend(Event("illness", "fall") for _ in range(falls))
            if day is not None:
                self.day = day

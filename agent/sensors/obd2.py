"""EV mileage over OBD-II: python-OBD through an ELM327 adapter on a serial port.

A thread owns the port: it connects (with backoff while the adapter is missing or unplugged),
reads the car's support bitmaps once per connection, then polls speed, the odometer (PID A6, or
PID 31 with a running total kept on the device) and the battery charge (PID 5B) where the car
offers them. `read` only takes the thread's latest snapshot, so a slow or hung adapter never
holds up the agent's loop. Decoding and the mileage ledger are pure (agent.sensors.obd_pids).

Telemetry: `odometer_m`, `km_30d` (what the ev_tier rule reads), `speed_kmh`, `soc_pct`, and
`obd2.pid.<hex>` = 1 or 0 for each PID the scene uses: whether the car answers it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from agent.backoff import Backoff
from agent.jsonfile import write_json_atomic
from agent.sensors import obd_pids as pids
from agent.sensors.faults import Fault
from agent.sensors.iio import SensorError
from agent.sensors.obd_pids import Pid
from agent.sensors.scenes import FaultEpisodes, SceneReading

log = logging.getLogger(__name__)

NAME = "obd2"
DEAD_AFTER = 3
"""Replies in a row without valid data before a PID the car declares counts as unsupported."""


@dataclass(frozen=True)
class Round:
    """One polling round's outcome: the telemetry and the faults seen in it."""

    telemetry: dict[str, int]
    faults: frozenset[Fault] = frozenset()


class ObdLink(Protocol):
    """An open adapter: raw service 01 replies by PID (one per answering ECU)."""

    def query(self, pid: int) -> tuple[bytes, ...]: ...

    @property
    def connected(self) -> bool: ...

    def close(self) -> None: ...


def import_obd() -> Any:
    """python-OBD, imported lazily (only OBD rigs need it). Its units library, pint, probes for
    the optional `mip` solver and breaks on the unrelated `mip` stub package that MicroPython
    stubs install (the dev extra): hide that name from it while importing."""
    hidden = "mip" not in sys.modules
    if hidden:
        sys.modules["mip"] = None  # type: ignore[assignment]  # makes `import mip` fail cleanly
    try:
        import obd
    except ImportError as exc:
        raise SensorError(
            "the obd2 scene needs python-OBD: pip install 'credit-pool-edge[obd]'"
        ) from exc
    finally:
        if hidden:
            del sys.modules["mip"]
    return obd


class PythonObdLink:
    def __init__(self, port: str, baud: int, timeout_s: float) -> None:
        obd = import_obd()
        self._obd = obd
        self._conn = obd.OBD(
            port, baudrate=baud or None, fast=False, timeout=timeout_s, check_voltage=False
        )
        if self._conn.status() != obd.OBDStatus.CAR_CONNECTED:
            self._conn.close()
            raise SensorError(f"no car behind the ELM327 adapter on {port}")
        self._commands: dict[int, Any] = {}

    def _command(self, pid: int) -> Any:
        if pid not in self._commands:
            from obd import OBDCommand
            from obd.protocols import ECU

            self._commands[pid] = OBDCommand(
                f"PID_{pid:02X}",
                f"service 01 PID {pid:02X}",
                b"01%02X" % pid,
                0,  # any length: agent.sensors.obd_pids checks it
                lambda messages: tuple(bytes(m.data) for m in messages),
                ECU.ALL,
                False,
            )
        return self._commands[pid]

    def query(self, pid: int) -> tuple[bytes, ...]:
        response = self._conn.query(self._command(pid), force=True)
        return () if response.is_null() else tuple(response.value)

    @property
    def connected(self) -> bool:
        return bool(self._conn.status() != self._obd.OBDStatus.NOT_CONNECTED)

    def close(self) -> None:
        self._conn.close()


def open_python_obd(port: Path, baud: int) -> ObdLink:
    return PythonObdLink(str(port), baud, timeout_s=2.0)


def _first(pid: Pid, replies: tuple[bytes, ...]) -> int | None:
    for reply in replies:
        data = pids.payload(pid, reply, pids.DATA_BYTES[pid])
        if data is not None:
            return pids.decode(pid, data)
    return None


class ObdReader:
    """The obd2 scene reader (see the module docstring)."""

    name = NAME

    def __init__(
        self,
        port: Path,
        baud: int,
        state_file: Path,
        *,
        connect: Callable[[Path, int], ObdLink] = open_python_obd,
        period_s: float = 1.0,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        backoff: Backoff | None = None,
    ) -> None:
        self.port, self.baud, self.state_file = port, baud, state_file
        self.connect, self.period_s, self.wall_ms = connect, period_s, wall_ms
        self.backoff = backoff or Backoff(base_s=0.5, cap_s=10.0, refused_cap_s=10.0)
        self.mileage = self._load()
        self._lock = threading.Lock()
        self._telemetry: dict[str, int] = {}
        self._faults: frozenset[Fault] = frozenset()
        self._episodes = FaultEpisodes()
        self._began: list[Fault] = []
        self._was_connected = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="obd2", daemon=True)
        self._thread.start()

    # ---- the agent's side --------------------------------------------------------------------

    def read(self, now_ms: int) -> SceneReading:
        with self._lock:
            began, self._began = tuple(self._began), []
            return SceneReading(dict(self._telemetry), began, not self._faults)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)

    # ---- the port's side ---------------------------------------------------------------------

    def _load(self) -> pids.Mileage:
        try:
            return pids.from_json(json.loads(self.state_file.read_text()))
        except FileNotFoundError:
            return pids.Mileage()
        except (OSError, ValueError, TypeError) as exc:
            log.warning(
                "starting a new mileage ledger: %s is unreadable (%s)", self.state_file, exc
            )
            return pids.Mileage()

    def _publish(self, outcome: Round) -> None:
        with self._lock:
            self._telemetry = outcome.telemetry
            self._began.extend(self._episodes.update(outcome.faults))
            self._faults = outcome.faults

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.port.exists():
                fault = Fault.UNPLUGGED if self._was_connected else Fault.MISSING
                self._publish(Round({}, frozenset({fault})))
                self._stop.wait(self.backoff.next_delay(refused=False))
                continue
            try:
                link = self.connect(self.port, self.baud)
            except (SensorError, OSError) as exc:
                log.warning("OBD-II adapter on %s: %s", self.port, exc)
                fault = Fault.UNPLUGGED if self._was_connected else Fault.READ
                self._publish(Round({}, frozenset({fault})))
                self._stop.wait(self.backoff.next_delay(refused=False))
                continue
            self.backoff.reset()
            self._was_connected = True
            try:
                self._session(link)
            except Exception:  # never die silently and leave the last values looking healthy
                log.exception("OBD-II: unexpected error; counted as a read fault")
                self._publish(Round({}, frozenset({Fault.READ})))
                self._stop.wait(self.backoff.next_delay(refused=False))
            finally:
                with contextlib.suppress(Exception):
                    link.close()

    def _session(self, link: ObdLink) -> None:
        declared: set[int] = set()
        for base in pids.SUPPORT_PIDS:
            if base and base not in declared:
                break
            for reply in link.query(base):
                data = pids.payload(base, reply, 4)
                if data is not None:
                    declared |= pids.supported(base, data)
        usable = {pid for pid in Pid if pid in declared}
        misses = {pid: 0 for pid in Pid}
        missing = sorted(f"{pid:02X}" for pid in Pid if pid not in usable)
        if missing:
            log.warning("the car does not offer OBD-II PIDs %s", ", ".join(missing))
        while not self._stop.is_set():
            values: dict[Pid, int] = {}
            for pid in sorted(usable):
                value = _first(pid, link.query(pid))
                if value is None:
                    misses[pid] += 1
                    if misses[pid] >= DEAD_AFTER:
                        log.warning("PID %02X is declared but never answers: unsupported", pid)
                        usable.discard(pid)
                else:
                    misses[pid], values[pid] = 0, value
            if not link.connected:
                self._publish(Round({}, frozenset({Fault.UNPLUGGED})))
                return
            self._publish(self._step(values, usable))
            self._stop.wait(self.period_s)

    def _step(self, values: dict[Pid, int], usable: set[Pid]) -> Round:
        ts = self.wall_ms()
        before = self.mileage
        state = before
        faults: set[Fault] = set()
        if Pid.SPEED in values:
            state = pids.with_speed(state, values[Pid.SPEED], ts)
        if Pid.ODOMETER in usable:
            if Pid.ODOMETER in values:
                state = pids.with_odometer(state, values[Pid.ODOMETER], ts)
        elif Pid.DISTANCE_SINCE_CLEAR in values:
            state = pids.with_distance_since_clear(state, values[Pid.DISTANCE_SINCE_CLEAR], ts)
        if usable and not values:
            faults.add(Fault.READ)  # connected, yet nothing answered this round
        if pids.stuck(state):
            faults.add(Fault.STUCK)
        self.mileage = state
        if replace(state, unmoved_m=0, last_ts_ms=None) != replace(
            before, unmoved_m=0, last_ts_ms=None
        ):
            try:
                write_json_atomic(self.state_file, pids.to_json(state), durable=False)
            except OSError as exc:  # a full or read-only card: keep reading, say so
                log.warning("OBD-II: cannot save %s: %s", self.state_file, exc)
                faults.add(Fault.READ)
        telemetry = {f"{NAME}.pid.{pid:02x}": int(pid in usable) for pid in Pid}
        has_distance = Pid.ODOMETER in usable or Pid.DISTANCE_SINCE_CLEAR in usable
        if has_distance and state.marks:
            telemetry["odometer_m"] = state.total_m
            telemetry["km_30d"] = pids.km_30d(state, ts)
        if Pid.SPEED in values:
            telemetry["speed_kmh"] = values[Pid.SPEED]
        if Pid.BATTERY_REMAINING in values:
            telemetry["soc_pct"] = values[Pid.BATTERY_REMAINING]
        return Round(telemetry, frozenset(faults))

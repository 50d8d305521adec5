"""Replay source: captures recorded to a JSON-lines file, played back in a loop.

`edge-agent record` writes such a file from any source; the HIL bench replays it. One line per
capture: the Capture's arrays as lists, its scalars, and the telemetry and events (an emergency,
a detected fall) seen with it. A recorded event fires once each time its line is played.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from agent.features import Capture
from agent.sensors.iio import SensorError
from agent.triggers import Event, Reading


def write_capture(
    fh: IO[str], capture: Capture, telemetry: dict[str, int], events: Sequence[Event] = ()
) -> None:
    fh.write(
        json.dumps(
            {
                "imu_raw": capture.imu_raw.tolist(),
                "imu_ts_us": capture.imu_ts_us.tolist(),
                "sample_rate_hz": capture.sample_rate_hz,
                "accel_lsb_per_g": capture.accel_lsb_per_g,
                "gyro_lsb_per_dps": capture.gyro_lsb_per_dps,
                "temp_mc": capture.temp_mc,
                "tap_intervals_ms": capture.tap_intervals_ms.tolist(),
                "tap_holds_ms": capture.tap_holds_ms.tolist(),
                "telemetry": telemetry,
                "events": [[e.emergency, e.source, e.amount_fen] for e in events],
            }
        )
        + "\n"
    )


def _capture(row: dict[str, Any]) -> Capture:
    return Capture(
        imu_raw=np.asarray(row["imu_raw"], dtype=np.int16),
        imu_ts_us=np.asarray(row["imu_ts_us"], dtype=np.int64),
        sample_rate_hz=float(row["sample_rate_hz"]),
        accel_lsb_per_g=float(row["accel_lsb_per_g"]),
        gyro_lsb_per_dps=float(row["gyro_lsb_per_dps"]),
        temp_mc=int(row["temp_mc"]),
        tap_intervals_ms=np.asarray(row["tap_intervals_ms"], dtype=np.int32),
        tap_holds_ms=np.asarray(row["tap_holds_ms"], dtype=np.int32),
    )


class ReplaySource:
    def __init__(self, path: Path) -> None:
        try:
            lines = [line for line in path.read_text().splitlines() if line.strip()]
            self.rows = [json.loads(line) for line in lines]
            self.captures = [_capture(row) for row in self.rows]
            self.events = [
                tuple(Event(str(k), str(s), int(a)) for k, s, a in row.get("events", []))
                for row in self.rows
            ]
        except OSError as exc:
            raise SensorError(f"cannot read replay file {path}: {exc.strerror}") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise SensorError(f"replay file {path} is not a capture recording: {exc}") from exc
        if not self.captures:
            raise SensorError(f"replay file {path} holds no captures")
        self._next = 0
        self._played = -1  # the line whose events were last handed out

    def poll(self, now_ms: int) -> Reading:
        line = self._next - 1
        row = self.rows[line % len(self.rows)]
        telemetry = {str(k): int(v) for k, v in row.get("telemetry", {}).items()}
        events = self.events[line % len(self.rows)] if line != self._played else ()
        self._played = line
        return Reading(now_ms, telemetry, events)

    def capture(self) -> Capture:
        capture = self.captures[self._next % len(self.captures)]
        self._next += 1
        return capture

    def close(self) -> None:
        pass

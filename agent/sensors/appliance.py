"""Deterministic appliance and wearable telemetry for the sim source.

Each device kind has its own small model, seeded per device, driven by a simulated calendar
(`day_s` seconds per day, so a demo can live through weeks in minutes):
- fridge: items with their own consumption per day, refilled by the household when nearly empty
  (or when a restock offer is accepted); telemetry `inv.<item>` in percent.
- wearable: a daily step total per user, accumulated through the day (`day`, `steps_today`),
  a resting heart rate (`hr_bpm`), and a rare fall (an event the fall detector would raise).
- ev: daily kilometres; `odometer_m` and the rolling `km_30d`.
- phone: `battery_pct` only (its signal is the IMU and the taps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from agent.triggers import Event

FRIDGE_ITEMS = ("milk", "eggs", "juice", "yogurt", "greens")


@dataclass
class Telemetry:
    kind: str
    seed: int
    day_s: float
    start_ms: int
    fall_per_day: float = 0.02
    _cache: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rng = np.random.default_rng([self.seed, 7])
        self._usage = {item: float(rng.uniform(8, 30)) for item in FRIDGE_ITEMS}  # % per day
        self._steps_mean = float(rng.uniform(6_000, 13_000))
        self._km_mean = float(rng.uniform(20, 90))
        self._hr = int(rng.integers(55, 80))

    def day_of(self, now_ms: int) -> float:
        return max(0.0, (now_ms - self.start_ms) / 1000 / self.day_s)

    def _daily(self, salt: int, day: int, mean: float, sd: float) -> float:
        rng = np.random.default_rng([self.seed, salt, day])
        return max(0.0, float(rng.normal(mean, sd)))

    def read(self, now_ms: int) -> tuple[dict[str, int], tuple[Event, ...]]:
        t = self.day_of(now_ms)
        day = int(t)
        if self.kind == "fridge":
            return {f"inv.{i}": self._level(i, t) for i in FRIDGE_ITEMS}, ()
        if self.kind == "wearable":
            total = self._daily(1, day, self._steps_mean, 2_500)
            frac = t - day
            steps = int(total * min(1.0, max(0.0, (frac - 0.25) / 0.6)))
            events: tuple[Event, ...] = ()
            if self._fall_at(now_ms):
                events = (Event("illness", "fall"),)
            return {"day": day, "steps_today": steps, "hr_bpm": self._hr}, events
        if self.kind == "ev":
            km_days = [self._daily(2, d, self._km_mean, 25) for d in range(max(0, day - 29), day)]
            today = self._daily(2, day, self._km_mean, 25) * (t - day)
            # The odometer only ever grows: the long-run mean, not the daily noise.
            return {
                "odometer_m": int(self._km_mean * t * 1000),
                "km_30d": int(sum(km_days) + today),
            }, ()
        return {"battery_pct": int(100 - (t * 40) % 80)}, ()

    def _level(self, item: str, t: float) -> int:
        # Consumed at a steady rate; the household refills at 5 %, so the level saw-tooths.
        span = 95.0 / self._usage[item]  # days from full to 5 %
        phase = (t + self.seed % 7 / 7 * span) % span
        return math.floor(100 - phase * self._usage[item])

    def _fall_at(self, now_ms: int) -> bool:
        # A fall happens in a given (simulated) hour with probability fall_per_day / 24; it is
        # reported once, on the first poll of that hour.
        hour = int(self.day_of(now_ms) * 24)
        if self._cache.get("fall_hour") == hour:
            return False
        rng = np.random.default_rng([self.seed, 3, hour])
        if rng.random() < self.fall_per_day / 24:
            self._cache["fall_hour"] = hour
            return True
        return False

"""Activity, steps, falls and the day's step count from an accelerometer: pure functions of values.

- Activity and steps of one window: `classify` says rest, walk or run from 5-10 s of three-axis
  samples in m/s^2 (any orientation, with or without gravity) and counts the window's steps
  from its cadence; `classify_g` takes samples in g at any rate. Only a gait has steps, so
  fidgeting, a vehicle's vibration or a racket sport add none.
- Falls: from magnitudes |a| in g, free fall (|a| under FREE_FALL_G for at least FREE_FALL_S)
  followed within IMPACT_WITHIN_S by an impact over IMPACT_G: the classic two-phase threshold
  detector.
- The day's count: steps added to `steps_today`, which restarts at 0 on a new UTC day; a chip's
  own step counter (IIO `in_steps_input`) is cumulative, so its growth is what is added.

The adapter (agent.sensors.activity_reader) samples the IMU and carries these states.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

FREE_FALL_G = 0.35
FREE_FALL_S = 0.08
IMPACT_G = 1.9
"""Under 2 g on purpose: the reference rig's MPU-6050 runs at +-2 g full scale (its fingerprint
captures need the resolution), so a hard impact reads as a saturated 2 g there."""
IMPACT_WITHIN_S = 1.0
DAY_MS = 86_400_000


@dataclass(frozen=True)
class FallState:
    free_s: float = 0.0  # how long |a| has stayed in free fall
    window_s: float = 0.0  # time left to see the impact after a free fall (0: none pending)


def detect_falls(
    state: FallState, samples_g: Sequence[float], rate_hz: float
) -> tuple[FallState, int]:
    """Falls in `samples_g`: free fall, then an impact within IMPACT_WITHIN_S."""
    dt = 1.0 / rate_hz
    free, window = state.free_s, state.window_s
    falls = 0
    for g in samples_g:
        window = max(0.0, window - dt)
        if g < FREE_FALL_G:
            free += dt
            if free >= FREE_FALL_S:
                window = IMPACT_WITHIN_S
        else:
            free = 0.0
            if window > 0 and g > IMPACT_G:
                falls, window = falls + 1, 0.0
    return FallState(free, window), falls


@dataclass(frozen=True)
class DaySteps:
    """The step count of the current UTC day, and the chip counter's last value if any."""

    day: int = -1
    steps_today: int = 0
    counter: int | None = None

    def __post_init__(self) -> None:
        if self.steps_today < 0:
            raise ValueError("steps_today is never negative")


def add_steps(state: DaySteps, steps: int, ts_ms: int) -> DaySteps:
    day = ts_ms // DAY_MS
    base = state.steps_today if day == state.day else 0
    return replace(state, day=day, steps_today=base + max(0, steps))


def add_counter(state: DaySteps, counter: int, ts_ms: int) -> DaySteps:
    """A cumulative chip counter's reading: its growth is added; a counter that went back was
    reset (the chip lost power) and counts from 0."""
    last = state.counter
    grown = 0 if last is None else (counter - last if counter >= last else counter)
    return replace(add_steps(state, grown, ts_ms), counter=counter)


def magnitudes(samples: Sequence[tuple[float, float, float]]) -> list[float]:
    """|a| of (x, y, z) samples in g."""
    return [(x * x + y * y + z * z) ** 0.5 for x, y, z in samples]


def frozen(samples: Sequence[tuple[float, float, float]]) -> bool:
    """A live accelerometer's lowest bits always move: a whole batch of identical samples means
    a stuck part or driver (only judged on batches of at least 10)."""
    return len(samples) >= 10 and all(s == samples[0] for s in samples)


# ---- activity of one window -------------------------------------------------------------------

WINDOW_S = (5.0, 10.0)
RATE_HZ = (10.0, 100.0)
REST_MAX_RMS = 1.5
"""m/s^2 of motion (gravity removed) under which a window is rest whatever its rhythm: standing,
sitting, typing and fidgeting move a wrist less than walking's 2-6 m/s^2 (Bouten et al. 1997,
IEEE TBME 44(3): body accelerations of walking are 1-10 m/s^2)."""
RUN_MIN_RMS = 8.0
"""m/s^2 of motion over which a rhythmic window is running: the foot strike of a run peaks at
2-3 g (20-30 m/s^2), several times walking's."""
CADENCE_HZ = (1.2, 4.0)
"""Steps a second that count as a gait (slow walking to sprinting); Nyquist also limits a 10 Hz
window to under 5 Hz."""
MIN_RHYTHM = 0.3
"""Autocorrelation at the step period that makes motion a gait rather than random movement."""
ARRHYTHMIC_REST_MAX_RMS = 4.0
"""m/s^2 under which motion without a gait (gesturing, cooking, fidgeting) still counts as rest;
more vigorous motion without a gait (a racket sport) is labelled by its vigour, with no steps."""
EARTH_G = 9.80665  # standard gravity, m/s^2 per g (CGPM 1901)

Label = Literal["rest", "walk", "run"]


class ActivityError(ValueError):
    """A window that cannot be classified (lengths, rate or duration out of range)."""


@dataclass(frozen=True)
class Activity:
    label: Label
    steps: int
    cadence_hz: float  # steps a second (0 when no gait was found)
    motion_rms: float  # m/s^2 of acceleration with gravity (the window's mean) removed
    rhythm: float  # autocorrelation at the step period (0-1)


def _autocorr(x: Sequence[float], lag: int) -> float:
    n = len(x) - lag
    num = sum(x[i] * x[i + lag] for i in range(n))
    den = math.sqrt(sum(v * v for v in x[:n]) * sum(v * v for v in x[lag:]))
    return num / den if den > 0 else 0.0


def _step_period(x: Sequence[float], hz: float) -> tuple[float, float]:
    """(period in samples, autocorrelation there) of the strongest step-rate rhythm of x; the
    peak lag is refined by a parabola through its neighbours (a 10 Hz window has few lags)."""
    lo = max(1, math.ceil(hz / CADENCE_HZ[1]))
    hi = min(len(x) // 2, math.floor(hz / CADENCE_HZ[0]))
    r = {lag: _autocorr(x, lag) for lag in range(max(1, lo - 1), hi + 2)}
    best = max(range(lo, hi + 1), key=lambda lag: r[lag])
    a, b, c = r.get(best - 1, r[best]), r[best], r.get(best + 1, r[best])
    curve = a - 2 * b + c
    shift = 0.5 * (a - c) / curve if curve < 0 else 0.0
    return best + max(-0.5, min(0.5, shift)), b


def classify(ax: Sequence[float], ay: Sequence[float], az: Sequence[float], hz: float) -> Activity:
    """Rest, walk or run, and the steps, of one window of acceleration in m/s^2.

    Gravity is whatever the window's mean is (zero for a linear-acceleration sensor; 1 g in some
    direction for a raw one), so the orientation does not matter. What is left is the motion:
    its RMS says how vigorous it is, and its autocorrelation whether it is a gait and at what
    cadence. A window moving less than REST_MAX_RMS, or moving less than ARRHYTHMIC_REST_MAX_RMS
    without a rhythm at a step rate, is rest; else a window over RUN_MIN_RMS is a run and one
    under it a walk. Steps are the cadence times the window's duration, and 0 without a gait.
    """
    n = len(ax)
    if len(ay) != n or len(az) != n:
        raise ActivityError("ax, ay and az must have one value a sample")
    if not RATE_HZ[0] <= hz <= RATE_HZ[1]:
        raise ActivityError(f"rate {hz} Hz is outside {RATE_HZ[0]:g}-{RATE_HZ[1]:g} Hz")
    seconds = n / hz
    if not WINDOW_S[0] <= seconds <= WINDOW_S[1] + 1e-9:
        raise ActivityError(
            f"a window of {seconds:g} s is outside {WINDOW_S[0]:g}-{WINDOW_S[1]:g} s"
        )
    if not all(math.isfinite(v) for axis in (ax, ay, az) for v in axis):
        raise ActivityError("samples must be finite numbers")
    mx, my, mz = sum(ax) / n, sum(ay) / n, sum(az) / n
    dx = [v - mx for v in ax]
    dy = [v - my for v in ay]
    dz = [v - mz for v in az]
    rms = math.sqrt(sum(x * x + y * y + z * z for x, y, z in zip(dx, dy, dz, strict=True)) / n)
    # The gait signal. With gravity in the window (a raw accelerometer), the motion along it:
    # each step lifts and drops the body, whichever way the device is worn. Without (a linear-
    # acceleration sensor), the motion's magnitude, centred: heel strikes stand out of it, but
    # a smooth sinusoid would read at twice its rate (|sin| repeats every half period).
    g = math.sqrt(mx * mx + my * my + mz * mz)
    if g > EARTH_G / 2:
        signal = [(x * mx + y * my + z * mz) / g for x, y, z in zip(dx, dy, dz, strict=True)]
    else:
        mags = [math.sqrt(x * x + y * y + z * z) for x, y, z in zip(dx, dy, dz, strict=True)]
        mean = sum(mags) / n
        signal = [v - mean for v in mags]
    period, rhythm = _step_period(signal, hz)
    gait = rhythm >= MIN_RHYTHM
    rhythm = max(0.0, rhythm)
    if rms < REST_MAX_RMS or (not gait and rms < ARRHYTHMIC_REST_MAX_RMS):
        return Activity("rest", 0, 0.0, rms, rhythm)
    label: Label = "run" if rms >= RUN_MIN_RMS else "walk"
    if not gait:
        return Activity(label, 0, 0.0, rms, rhythm)
    cadence = hz / period
    return Activity(label, round(cadence * seconds), cadence, rms, rhythm)


def classify_g(samples_g: Sequence[tuple[float, float, float]], rate_hz: float) -> Activity:
    """`classify` of (x, y, z) samples in g at any rate: converted to m/s^2, and averaged in
    blocks down to at most RATE_HZ[1] (the mean of a block also filters what it drops)."""
    factor = max(1, math.ceil(rate_hz / RATE_HZ[1]))
    n = len(samples_g) // factor
    axes: list[list[float]] = [[], [], []]
    for i in range(n):
        block = samples_g[i * factor : (i + 1) * factor]
        for k in range(3):
            axes[k].append(sum(s[k] for s in block) * EARTH_G / factor)
    return classify(axes[0], axes[1], axes[2], rate_hz / factor)

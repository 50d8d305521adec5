"""Steps, falls and the day's step count from an accelerometer stream: pure functions of values.

Samples are acceleration magnitudes in g (|a|, so the device's orientation does not matter).
- Steps: a walking step is a swing of |a| about its running mean; a step is counted when the
  swing rises through +STEP_RISE_G after having fallen below the mean, at most one per
  STEP_REFRACTORY_S (people do not walk faster than about 3.5 steps a second).
- Falls: free fall (|a| under FREE_FALL_G for at least FREE_FALL_S) followed within IMPACT_WITHIN_S
  by an impact over IMPACT_G: the classic two-phase threshold detector.
- The day's count: steps added to `steps_today`, which restarts at 0 on a new UTC day; a chip's
  own step counter (IIO `in_steps_input`) is cumulative, so its growth is what is added.

The adapter (agent.sensors.activity_reader) samples the IMU and carries these states.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

STEP_RISE_G = 0.12
STEP_REFRACTORY_S = 0.28
MEAN_ALPHA = 0.02  # the running mean's weight per sample: a time constant of about 1 s at 50 Hz
FREE_FALL_G = 0.35
FREE_FALL_S = 0.08
IMPACT_G = 1.9
"""Under 2 g on purpose: the reference rig's MPU-6050 runs at +-2 g full scale (its fingerprint
captures need the resolution), so a hard impact reads as a saturated 2 g there."""
IMPACT_WITHIN_S = 1.0
DAY_MS = 86_400_000


@dataclass(frozen=True)
class StepState:
    mean_g: float = 1.0
    armed: bool = False  # the swing went below the mean since the last step
    since_step_s: float = 1e9


def count_steps(
    state: StepState, samples_g: Sequence[float], rate_hz: float
) -> tuple[StepState, int]:
    """Steps in `samples_g` (|a| in g at `rate_hz`), and the state for the next batch."""
    dt = 1.0 / rate_hz
    mean, armed, since = state.mean_g, state.armed, state.since_step_s
    steps = 0
    for g in samples_g:
        since += dt
        swing = g - mean
        if swing < 0:
            armed = True
        elif armed and swing > STEP_RISE_G and since >= STEP_REFRACTORY_S:
            steps, armed, since = steps + 1, False, 0.0
        mean += MEAN_ALPHA * (g - mean)
    return StepState(mean, armed, since), steps


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

"""Touch rhythm of a person: how fast they tap and how long they hold (keystroke dynamics).

Touch-down intervals and touch durations are log-normal per person (the usual model in
keystroke-dynamics studies), with a per-session tempo shift (mood, posture, the task) and
occasional pauses (reading the screen) that the robust measures in agent.features ignore.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

TAPS_PER_SESSION = (24, 64)


@dataclass(frozen=True)
class TapRhythm:
    """One person's (or one bot's) tapping habits."""

    iti_median_ms: float
    iti_logsd: float
    hold_median_ms: float
    hold_logsd: float
    pause_prob: float
    session_sd: float  # sd of the per-session log tempo shift

    @classmethod
    def draw(cls, rng: np.random.Generator) -> TapRhythm:
        """A person from the population of users."""
        return cls(
            iti_median_ms=float(320.0 * rng.lognormal(0.0, 0.3)),
            iti_logsd=float(rng.uniform(0.25, 0.55)),
            hold_median_ms=float(95.0 * rng.lognormal(0.0, 0.25)),
            hold_logsd=float(rng.uniform(0.15, 0.35)),
            pause_prob=float(rng.uniform(0.0, 0.08)),
            session_sd=float(rng.uniform(0.04, 0.09)),
        )

    @classmethod
    def bot(cls, rng: np.random.Generator) -> TapRhythm:
        """A script that taps for an emulator: steady tempo, tiny spread."""
        return cls(
            iti_median_ms=float(rng.uniform(150.0, 600.0)),
            iti_logsd=float(rng.uniform(0.01, 0.08)),
            hold_median_ms=float(rng.uniform(40.0, 150.0)),
            hold_logsd=float(rng.uniform(0.01, 0.08)),
            pause_prob=0.0,
            session_sd=0.01,
        )

    def session(
        self, rng: np.random.Generator
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]]:
        """(intervals_ms, holds_ms) of one session's taps."""
        n = int(rng.integers(*TAPS_PER_SESSION, endpoint=True))
        tempo = rng.normal(0.0, self.session_sd)
        iti = self.iti_median_ms * np.exp(tempo + rng.normal(0.0, self.iti_logsd, n - 1))
        pauses = rng.random(n - 1) < self.pause_prob
        iti = iti + pauses * rng.uniform(800.0, 4000.0, n - 1)
        hold = self.hold_median_ms * np.exp(0.5 * tempo + rng.normal(0.0, self.hold_logsd, n))
        # A touch lasts less than the gap to the next touch-down, and at least a frame (8 ms).
        hold = np.maximum(np.minimum(hold, np.append(iti, np.inf) * 0.9), 8.0)
        return (
            np.maximum(np.round(iti), 20).astype(np.int32),
            np.round(hold).astype(np.int32),
        )

"""A simulated device: one board (IMU part, clocks, thermometer) and its owner, from a seed.

Everything is a pure function of (seed, kind, session): the same arguments give the same bytes
on every run and machine (numpy's PCG64 streams keyed by SeedSequence).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agent.features import Capture
from agent.simulator.clock import Clocks, arrival_us
from agent.simulator.imu import ImuPart, RestPose, Vibration, render
from agent.simulator.profiles import DEVICE_KINDS, KindProfile, SimError, profile
from agent.simulator.swipe import SwipeHabit
from agent.simulator.touch import TapRhythm
from agent.strokes import Stroke

# Streams of a device's randomness; sessions of normal use and of enrollment never share one.
_HARDWARE, _OWNER, _SESSION, _ENROLL, _THERMO, _SWIPES, _STRANGER = range(7)
#: Resolution of the session temperature reading (a 12-bit thermal sensor: 1/16 C).
TEMP_STEP_C = 1.0 / 16.0


def rng_for(*key: int) -> np.random.Generator:
    """A generator keyed by non-negative integers."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(list(key))))


@dataclass(frozen=True)
class SessionEnv:
    """The conditions of one session: temperature, pose, vibration, clock start, randomness."""

    temp_c: float  # die temperature of the IMU
    pose: RestPose
    vibration: Vibration | None
    start_s: float  # host monotonic clock at the start of the window
    key: tuple[int, ...]  # keys the session's noise


class SimDevice:
    """A simulated phone, wearable, fridge or EV, constructed from an integer seed.

    - `capture(session)`: the session's `agent.features.Capture` (raw int16 IMU window at rest,
      arrival timestamps, temperature reading, taps where the kind has touch).
    - `enrollment(n)`: the n captures of provisioning, over a warm-up temperature range.
    - `skew_ppm`: the host crystal's frequency error at 25 C, for a skewed monotonic clock;
      `skew_ppm_at(temp_c)` at another temperature.
    """

    def __init__(self, seed: int, kind: str) -> None:
        if type(seed) is not int or seed < 0:
            raise SimError(f"seed must be a non-negative int, got {seed!r}")
        if kind not in DEVICE_KINDS:
            raise SimError(f"unknown device kind {kind!r}; one of {', '.join(DEVICE_KINDS)}")
        self.seed = seed
        self.kind = kind
        self.kind_code = DEVICE_KINDS.index(kind)
        self.profile: KindProfile = profile(kind)
        hw = rng_for(seed, self.kind_code, _HARDWARE)
        self.imu = ImuPart.draw(hw, self.profile)
        self.clocks = Clocks.draw(hw)
        self.thermo_offset_c = float(hw.normal(0.0, 0.8))
        self.owner = TapRhythm.draw(rng_for(seed, self.kind_code, _OWNER))
        # How the owner swipes (agent.simulator.swipe), and how the one other person who gets
        # hold of the device (`[sensors] impostor`) does.
        self.swiper = SwipeHabit.draw(rng_for(seed, self.kind_code, _OWNER, 1))
        self.stranger = SwipeHabit.draw(rng_for(seed, self.kind_code, _STRANGER))

    def __repr__(self) -> str:
        return f"SimDevice(seed={self.seed}, kind={self.kind!r})"

    @property
    def skew_ppm(self) -> float:
        """Host crystal frequency error at 25 C, parts per million (positive: runs fast)."""
        return self.clocks.skew_ppm

    def skew_ppm_at(self, temp_c: float) -> float:
        """Host crystal frequency error at `temp_c`."""
        return self.clocks.host_skew_ppm(temp_c)

    def session_env(self, session: int) -> SessionEnv:
        """Conditions of a session of normal use (session >= 0)."""
        if type(session) is not int or session < 0:
            raise SimError(f"session must be a non-negative int, got {session!r}")
        p = self.profile
        rng = rng_for(self.seed, self.kind_code, _SESSION, session, 0)
        temp = float(np.clip(rng.normal(p.temp_mean_c, p.temp_sd_c), p.temp_min_c, p.temp_max_c))
        return self._env(rng, temp, (self.seed, self.kind_code, _SESSION, session, 1))

    def enrollment_envs(self, n: int) -> list[SessionEnv]:
        """Conditions of the n enrollment sessions: a warm-up from the ambient temperature."""
        p = self.profile
        rng = rng_for(self.seed, self.kind_code, _ENROLL)
        start = rng.normal(p.temp_mean_c - p.temp_sd_c / 2, p.temp_sd_c / 2)
        span = rng.uniform(*p.warmup_span_c)
        temps = np.clip(start + np.linspace(0.0, span, n), p.temp_min_c, p.temp_max_c)
        return [
            self._env(rng, float(t), (self.seed, self.kind_code, _ENROLL, i, 1))
            for i, t in enumerate(temps)
        ]

    def _env(self, rng: np.random.Generator, temp_c: float, key: tuple[int, ...]) -> SessionEnv:
        p = self.profile
        return SessionEnv(
            temp_c=temp_c,
            pose=RestPose.draw(rng, p.tilt_max_deg),
            vibration=Vibration.draw(rng) if rng.random() < p.vibration_prob else None,
            start_s=float(rng.uniform(60.0, 3 * 86400.0)),
            key=key,
        )

    def temp_reading_mc(self, env: SessionEnv) -> int:
        """The thermal sensor's reading in a session: offset, gradient noise, 1/16 C steps."""
        rng = rng_for(*env.key, _THERMO)
        reading = env.temp_c + self.thermo_offset_c + rng.normal(0.0, 0.25)
        return round(round(float(reading) / TEMP_STEP_C) * TEMP_STEP_C * 1000)

    def render(self, env: SessionEnv, user: TapRhythm | None = None) -> Capture:
        """The capture of a session on this board, touched by `user` (default: the owner)."""
        p = self.profile
        rng = rng_for(*env.key)
        raw = render(self.imu, p, env.temp_c, env.pose, env.vibration, rng)
        ts = arrival_us(
            rng,
            p.n_samples,
            p.sample_rate_hz,
            self.clocks.imu_rate_ppm(env.temp_c),
            self.clocks.host_skew_ppm(env.temp_c),
            env.start_s,
            p.latency_mean_us,
        )
        if p.touch:
            iti, hold = (user or self.owner).session(rng)
        else:
            iti = hold = np.zeros(0, dtype=np.int32)
        return Capture(
            imu_raw=raw,
            imu_ts_us=ts,
            sample_rate_hz=p.sample_rate_hz,
            accel_lsb_per_g=p.accel_lsb_per_g,
            gyro_lsb_per_dps=p.gyro_lsb_per_dps,
            temp_mc=self.temp_reading_mc(env),
            tap_intervals_ms=iti,
            tap_holds_ms=hold,
        )

    def capture(self, session: int, user: TapRhythm | None = None) -> Capture:
        """The capture of session `session` of normal use."""
        return self.render(self.session_env(session), user)

    def swipes(self, session: int, n: int, stranger: bool = False) -> list[Stroke]:
        """The strokes of `n` swipes in session `session`: the owner's, or with `stranger` the
        other person's; none on a device without a touch screen."""
        if not self.profile.touch or n <= 0:
            return []
        habit = self.stranger if stranger else self.swiper
        return habit.session(rng_for(self.seed, self.kind_code, _SWIPES, session), n)

    def enrollment(self, n: int = 6) -> list[Capture]:
        """The n captures of provisioning (n >= 3 lets enroll fit temperature coefficients)."""
        if type(n) is not int or not 1 <= n <= 64:
            raise SimError(f"enrollment needs 1..64 sessions, got {n!r}")
        return [self.render(env) for env in self.enrollment_envs(n)]

"""The four impostors: captures that claim to be a victim device's session but are not.

Each generator is `f(victim, session, attack_seed) -> Capture`: what the agent would see in the
victim's session `session` (its live temperature where the attack keeps the real thermal sensor)
under an attack drawn from `attack_seed`. Attacks vary in care, so some are harder than others;
docs/model.md says which handles the model has on each and which variants it cannot catch.

- `replay`: a recording of an old genuine session of the victim is fed into the IMU path
  (hooked sensor HAL). The thermal sensor is read live. The recording is either long enough or a
  short clip looped; its samples are either re-timed by a software timer on the host or carry
  their recorded timestamps, shifted to now. The recorded taps are replayed too.
- `emulator`: the agent runs in an emulator whose synthetic IMU lacks real sensor physics (white
  noise, no flicker or anti-alias roll-off, made-up or zero offsets, a coarse float resolution in
  careless ones) and whose samples are paced by a software timer; taps come from a script or the
  attacker.
- `copied_key`: the device key copied to another board of the same kind running genuine
  firmware: real physics, another part's calibration and oscillators, the thief's taps.
- `other_user`: the victim's own board, used by another person: only the touch rhythm differs.
  Needs touch, so it applies to phones and wearables only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from agent.features import Capture
from agent.simulator.clock import arrival_us
from agent.simulator.device import TEMP_STEP_C, SimDevice, rng_for
from agent.simulator.imu import RestPose, quantise, shaped_noise
from agent.simulator.profiles import SimError, profile
from agent.simulator.touch import TapRhythm

Generator = Callable[[SimDevice, int, int], Capture]
_REPLAY, _EMULATOR, _COPIED, _OTHER = 101, 102, 103, 104
#: Old sessions that a replay attacker recorded are numbered from here (never a test session).
OLD_SESSIONS = (1_000_000, 2_000_000)


def replay(victim: SimDevice, session: int, attack_seed: int) -> Capture:
    """An old genuine session of the victim replayed into the current session."""
    rng = rng_for(victim.seed, victim.kind_code, _REPLAY, session, attack_seed)
    p = victim.profile
    old = victim.capture(int(rng.integers(*OLD_SESSIONS)))
    now = victim.session_env(session)
    n = p.n_samples
    raw = old.imu_raw
    clip = n if rng.random() < 0.5 else int(rng.integers(64, 193))
    index = np.arange(n) % clip
    raw = raw[index]
    if rng.random() < 0.5:
        # Re-timed by a software timer on the host: the host clock paces and stamps it.
        ts = arrival_us(rng, n, p.sample_rate_hz, 0.0, 0.0, now.start_s, rng.uniform(80, 1500))
    else:
        # Recorded timestamps, shifted to now; a looped clip repeats its own timing.
        rec = old.imu_ts_us[:clip] - old.imu_ts_us[0]
        period = (old.imu_ts_us[clip - 1] - old.imu_ts_us[0]) / max(clip - 1, 1)
        lap = rec[-1] + round(float(period))
        ts = int(now.start_s * 1e6) + rec[index] + (np.arange(n) // clip) * lap
    return Capture(
        imu_raw=raw,
        imu_ts_us=ts.astype(np.int64),
        sample_rate_hz=old.sample_rate_hz,
        accel_lsb_per_g=old.accel_lsb_per_g,
        gyro_lsb_per_dps=old.gyro_lsb_per_dps,
        temp_mc=victim.temp_reading_mc(now),
        tap_intervals_ms=old.tap_intervals_ms,
        tap_holds_ms=old.tap_holds_ms,
    )


def emulator(victim: SimDevice, session: int, attack_seed: int) -> Capture:
    """A synthetic capture from an emulator that impersonates the victim's kind."""
    rng = rng_for(victim.seed, victim.kind_code, _EMULATOR, session, attack_seed)
    p = victim.profile
    n, fs = p.n_samples, p.sample_rate_hz
    pose = RestPose.draw(rng, p.tilt_max_deg if rng.random() < 0.5 else 0.0)
    force = pose.world_to_body() @ np.array([0.0, 0.0, 1.0])
    # Careless emulators leave offsets at zero; others make some up from a plausible range.
    accel_bias = rng.normal(0, p.accel_bias_sd_mg * 1e-3, 3) if rng.random() < 0.5 else 0.0
    gyro_bias = rng.normal(0, p.gyro_bias_sd_dps, 3) if rng.random() < 0.6 else np.zeros(3)
    gain = 1.0 + (rng.normal(0, p.accel_scale_sd, 3) if rng.random() < 0.5 else 0.0)
    accel_nd = np.full(3, p.accel_nd_ug_rthz * 1e-6 * rng.lognormal(0.0, 0.3))
    gyro_nd = np.full(3, p.gyro_nd_mdps_rthz * 1e-3 * rng.lognormal(0.0, 0.3))
    # A careful emulator low-passes its white noise, at a cutoff of its own choosing.
    cutoff = float(rng.uniform(0.15, 0.45) * fs) if rng.random() < 0.3 else None
    accel = gain * force + accel_bias + shaped_noise(rng, n, fs, accel_nd, 0.0, cutoff)
    gyro = gyro_bias + shaped_noise(rng, n, fs, gyro_nd, 0.0, cutoff)
    coarse = rng.random() < 0.5
    accel_step = float(rng.uniform(4.0, 20.0)) if coarse else 1.0
    gyro_step = float(rng.uniform(2.0, 10.0)) if coarse else 1.0
    raw = np.concatenate(
        [
            quantise(accel, p.accel_lsb_per_g, accel_step),
            quantise(gyro, p.gyro_lsb_per_dps, gyro_step),
        ],
        axis=1,
    )
    # Paced by a host timer; some emulators offset the rate to look like a real oscillator.
    rate_ppm = float(rng.normal(0.0, 3000.0)) if rng.random() < 0.3 else 0.0
    start_s = float(rng.uniform(60.0, 3 * 86400.0))
    ts = arrival_us(rng, n, fs, rate_ppm, 0.0, start_s, float(rng.uniform(80.0, 1500.0)))
    temp_c = 25.0 if rng.random() < 0.5 else float(rng.normal(p.temp_mean_c, p.temp_sd_c))
    temp_mc = round(round(temp_c / TEMP_STEP_C) * TEMP_STEP_C * 1000)
    if p.touch:
        tapper = TapRhythm.bot(rng) if rng.random() < 0.5 else TapRhythm.draw(rng)
        iti, hold = tapper.session(rng)
    else:
        iti = hold = np.zeros(0, dtype=np.int32)
    return Capture(
        imu_raw=raw,
        imu_ts_us=ts,
        sample_rate_hz=fs,
        accel_lsb_per_g=p.accel_lsb_per_g,
        gyro_lsb_per_dps=p.gyro_lsb_per_dps,
        temp_mc=temp_mc,
        tap_intervals_ms=iti,
        tap_holds_ms=hold,
    )


def attacker_board(victim: SimDevice, attack_seed: int) -> SimDevice:
    """Another board of the victim's kind; its seed is far outside any cohort's seed range."""
    state = np.random.SeedSequence([victim.seed, victim.kind_code, _COPIED, attack_seed])
    seed = int(state.generate_state(1, dtype=np.uint64)[0]) >> 2 | (1 << 61)
    return SimDevice(seed, victim.kind)


def copied_key(victim: SimDevice, session: int, attack_seed: int) -> Capture:
    """The victim's key on another board of the same kind, in the thief's hands."""
    board = attacker_board(victim, attack_seed)
    thief = TapRhythm.draw(rng_for(victim.seed, victim.kind_code, _COPIED, attack_seed))
    return board.render(board.session_env(session), thief)


def other_user(victim: SimDevice, session: int, attack_seed: int) -> Capture:
    """The victim's board in session `session`, tapped by another person."""
    if not victim.profile.touch:
        raise SimError(f"other_user needs a touch device; a {victim.kind} has no touch screen")
    person = TapRhythm.draw(rng_for(victim.seed, victim.kind_code, _OTHER, attack_seed))
    return victim.capture(session, person)


IMPOSTORS: dict[str, Generator] = {
    "replay": replay,
    "emulator": emulator,
    "copied_key": copied_key,
    "other_user": other_user,
}
IMPOSTOR_KINDS = tuple(IMPOSTORS)


def applicable(kind: str) -> tuple[str, ...]:
    """The impostor kinds that apply to a device kind (other_user needs touch)."""
    touch = profile(kind).touch
    return tuple(k for k in IMPOSTOR_KINDS if touch or k != "other_user")


def impostor(name: str, victim: SimDevice, session: int, attack_seed: int) -> Capture:
    """Dispatch by name; SimError for an unknown or inapplicable impostor."""
    if name not in IMPOSTORS:
        raise SimError(f"unknown impostor {name!r}; one of {', '.join(IMPOSTOR_KINDS)}")
    return IMPOSTORS[name](victim, session, attack_seed)

"""Is a second board using this device's key? Clock, sequence, boot and fingerprint evidence.

A clone is another board that runs the agent with a copy of the device's key and state. It
cannot copy the original's crystal, its IMU, or the exact point its monotonic clock has reached,
and every report it signs says something about all three. `observe` takes one new message of a
device (call it once per message the replay window accepts; duplicates are not new) and returns
the next `CloneState` and the evidence the message gave:

    boot_regression       the boot counter went backwards
    seq_conflict          a sequence number of this boot seen again with another mono_ms
    mono_regression       within one boot, mono_ms falls outside the mono_ms of the nearest
                          lower and higher sequence numbers seen (the agent stamps mono_ms
                          when it makes a message, in seq order)
    clock_ahead           mono_ms further ahead of the receive time than the device's clock
                          line allows (skew.Envelope: the LP envelope of this boot's offsets);
                          network delay only ever puts a genuine report below the line
    skew_mismatch         this boot's LP skew differs from the crystal's, learnt from an
                          earlier boot (Kohno, Broido and claffy 2005: the skew is the board's)
    fingerprint_mismatch  `fp_hits` of the last `fp_window` fingerprinted reports farther than
                          `fp_limit` from the enrolled baseline (cloud_bridge.risk.fingerprint
                          .distance); a window, not a run, as a clone's reports may interleave
                          with the original's
    fingerprint_replay    a fingerprint identical to one of the last `replay_memory`: a real
                          sensor never measures the same 24 integers twice

A message with clock or boot evidence does not enter the clock model, so the genuine stream's
envelope stays what it was. The caller acts on `CloneCheck.clone` and persists the state.
Pure: the caller passes both clocks, the fingerprint distance and a digest of the fingerprint.
"""

from __future__ import annotations

import bisect
import enum
import math
from dataclasses import dataclass, field, fields, replace

from cloud_bridge.errors import BridgeError
from cloud_bridge.risk.skew import Envelope, SkewFit


class CloneError(BridgeError):
    """An observation or policy that cannot be used, with the reason."""


class Evidence(enum.StrEnum):
    BOOT_REGRESSION = "boot_regression"
    SEQ_CONFLICT = "seq_conflict"
    MONO_REGRESSION = "mono_regression"
    CLOCK_AHEAD = "clock_ahead"
    SKEW_MISMATCH = "skew_mismatch"
    FINGERPRINT_MISMATCH = "fingerprint_mismatch"
    FINGERPRINT_REPLAY = "fingerprint_replay"


@dataclass(frozen=True)
class ClonePolicy:
    """Thresholds of the clone evidence (the defaults are those tools.eval_risk clone measures).

    - `fp_limit`, `fp_hits`, `fp_window`: fingerprint distance, and how many of the last
      `fp_window` fingerprinted reports above it. Genuine sessions of the simulated fleet
      stay under 25 (p99 15); another board's distance to this baseline is over 38 in 999
      cases of 1,000, and over 25 for nearly every report of the closest pairs.
    - `seq_memory`: sequence numbers (with their mono_ms) remembered per boot.
    - `ahead_allow_ms`, `ahead_slack_ppm`: how far above the clock line a report may be, plus
      slack per second away from the line's tangent point (the crystal's skew moves a few
      ppm with temperature over a day).
    - `fit_min_span_s`, `max_skew_ppm`: the line is used only once it spans this long, its
      skew is one a crystal can have (a backlog burst at the start of a boot gives wild lines)
      and it does not rest on the newest point (`SkewFit.on_newest`: maybe a delayed one).
    - `skew_min_span_s`, `skew_min_edge_s`, `skew_tolerance_ppm`: skew_mismatch needs a boot
      this long, an LP edge this long (`SkewFit.edge_s`) and a difference this large from the
      crystal's learnt skew (a tuning-fork crystal moves 0.034 ppm/C^2 off its turnover
      temperature: a hot afternoon shifts it 8 ppm). An edge across an offline gap rests on
      two single reports, each with its own delay: 150 ms over 2 hours is 20 ppm, hence 4 h.
    - `replay_memory`: fingerprint digests remembered.
    """

    fp_limit: float = 25.0
    fp_hits: int = 2
    fp_window: int = 4
    seq_memory: int = 128
    ahead_allow_ms: float = 2000.0
    ahead_slack_ppm: float = 20.0
    fit_min_span_s: float = 600.0
    max_skew_ppm: float = 100.0
    skew_min_span_s: float = 14400.0
    skew_min_edge_s: float = 14400.0
    skew_tolerance_ppm: float = 20.0
    replay_memory: int = 64

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("int", int):
                if type(value) is not int or value < 1:
                    raise CloneError(f"clone {f.name} = {value!r} must be an integer >= 1")
            elif not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise CloneError(f"clone {f.name} = {value!r} must be a positive number")
        if self.fp_hits > self.fp_window:
            raise CloneError(f"clone fp_hits = {self.fp_hits} must be <= fp_window")


@dataclass(frozen=True)
class Observation:
    """One new message of a device: its header, the bridge's receive time (us, a steady
    clock) and, for a report, the fingerprint's distance to the enrolled baseline and a digest
    of its wire form."""

    seq: int
    boot: int
    mono_ms: int
    received_us: int
    distance: float | None = None
    fingerprint_digest: bytes | None = None

    def __post_init__(self) -> None:
        for name in ("seq", "boot", "mono_ms", "received_us"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise CloneError(f"observation {name} must be a non-negative int, got {value!r}")
        if self.distance is not None and not (math.isfinite(self.distance) and self.distance >= 0):
            raise CloneError(f"observation distance must be finite and >= 0: {self.distance!r}")


@dataclass(frozen=True)
class CloneState:
    """What one device's past messages say about its board."""

    boot: int = -1  # -1: nothing seen yet
    seqs: tuple[tuple[int, int], ...] = ()  # (seq, mono_ms) of this boot, by seq, latest few
    envelope: Envelope = field(default_factory=Envelope)  # this boot's offsets
    crystal_skew_ppm: float | None = None  # learnt from a finished boot of enough span
    fp_far: tuple[bool, ...] = ()  # the last fp_window fingerprinted reports: beyond fp_limit?
    digests: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class CloneCheck:
    state: CloneState
    evidence: tuple[Evidence, ...]

    @property
    def clone(self) -> bool:
        return bool(self.evidence)


def _usable(
    fit: SkewFit | None, min_span_s: float, policy: ClonePolicy, min_edge_s: float = 0.0
) -> SkewFit | None:
    if (
        fit is None
        or fit.on_newest
        or fit.span_s < min_span_s
        or fit.edge_s < min_edge_s
        or abs(fit.skew_ppm) > policy.max_skew_ppm
    ):
        return None
    return fit


def _new_boot(state: CloneState, obs: Observation, policy: ClonePolicy) -> CloneState:
    """Start the clock model of a new boot; learn the crystal's skew from the one that ended."""
    crystal = state.crystal_skew_ppm
    ended = _usable(state.envelope.fit(), policy.skew_min_span_s, policy, policy.skew_min_edge_s)
    if crystal is None and ended is not None:
        crystal = ended.skew_ppm
    return replace(
        state,
        boot=obs.boot,
        seqs=((obs.seq, obs.mono_ms),),
        envelope=Envelope().add(obs.mono_ms, obs.received_us),
        crystal_skew_ppm=crystal,
    )


def _clock(
    state: CloneState, obs: Observation, policy: ClonePolicy
) -> tuple[CloneState, list[Evidence]]:
    """Evidence from seq, mono_ms and receive time within the current boot."""
    seqs = [s for s, _ in state.seqs]
    at = bisect.bisect_left(seqs, obs.seq)
    if at < len(seqs) and seqs[at] == obs.seq:
        same = state.seqs[at][1] == obs.mono_ms
        return state, [] if same else [Evidence.SEQ_CONFLICT]
    below = state.seqs[at - 1][1] if at > 0 else None
    above = state.seqs[at][1] if at < len(seqs) else None
    if (below is not None and obs.mono_ms < below) or (above is not None and obs.mono_ms > above):
        return state, [Evidence.MONO_REGRESSION]
    env = state.envelope
    x, y = env.relative(obs.mono_ms, obs.received_us)
    fit = _usable(env.fit(), policy.fit_min_span_s, policy)
    if fit is not None:
        allow = policy.ahead_allow_ms + policy.ahead_slack_ppm * abs(x - env.mean_x) / 1000.0
        if y > fit.offset_at(x) + allow:
            return state, [Evidence.CLOCK_AHEAD]
    if x > env.last_x:
        env = env.add(obs.mono_ms, obs.received_us)
    known = (*state.seqs[:at], (obs.seq, obs.mono_ms), *state.seqs[at:])
    state = replace(state, envelope=env, seqs=known[-policy.seq_memory :])
    evidence = []
    fit = _usable(env.fit(), policy.skew_min_span_s, policy, policy.skew_min_edge_s)
    if (
        fit is not None
        and state.crystal_skew_ppm is not None
        and abs(fit.skew_ppm - state.crystal_skew_ppm) > policy.skew_tolerance_ppm
    ):
        evidence.append(Evidence.SKEW_MISMATCH)
    return state, evidence


def _fingerprint(
    state: CloneState, obs: Observation, policy: ClonePolicy
) -> tuple[CloneState, list[Evidence]]:
    evidence = []
    far = state.fp_far
    if obs.distance is not None:
        far = (*far, obs.distance > policy.fp_limit)[-policy.fp_window :]
        if sum(far) >= policy.fp_hits:
            evidence.append(Evidence.FINGERPRINT_MISMATCH)
    digests = state.digests
    if obs.fingerprint_digest is not None:
        if obs.fingerprint_digest in digests:
            evidence.append(Evidence.FINGERPRINT_REPLAY)
        else:
            digests = (*digests, obs.fingerprint_digest)[-policy.replay_memory :]
    return replace(state, fp_far=far, digests=digests), evidence


def observe(state: CloneState, obs: Observation, policy: ClonePolicy) -> CloneCheck:
    """The next state and the clone evidence of one new message."""
    evidence: list[Evidence] = []
    if obs.boot < state.boot:
        evidence.append(Evidence.BOOT_REGRESSION)
    elif obs.boot > state.boot:
        state = _new_boot(state, obs, policy)
    else:
        state, found = _clock(state, obs, policy)
        evidence += found
    state, found = _fingerprint(state, obs, policy)
    return CloneCheck(state, tuple(evidence + found))

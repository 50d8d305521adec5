"""Every per-device signal of one data event, from the device's remembered state, in one pure step.

    observe(memory, seen, baseline, scales, policy) -> Observed(memory', evidence, points)

`Memory` is what the signals need to remember of one device between events, persisted by the
store with the device (`risk_state`, migration 007): the clone model (`clone.CloneState`: this
boot's sequence numbers and clock envelope for the skew and clock checks, the crystal's skew,
the last fingerprint distances and digests), the fingerprint drift (`fingerprint.Drift`) and the
running median of its own allowed scores (`Centre`, which re-centres its thresholds).

Evidence codes and their weights are in `cloud_bridge.risk.policy.SignalPolicy`; the verdict
(`cloud_bridge.risk.verdict.judge`) adds the points to the server score's level.

A `Seen` carries the event's location, but impossible travel is a per-user signal (judged
against the user's last located event from any of their devices): `cloud_bridge.risk.user_signals`.

`Centre` answers item 1 of issue 13: a device whose enrolled baseline sits off its own live
sessions scores high on every report, and a fleet-wide threshold flags it again and again. Its
own median score, tracked from the reports that were allowed, moves its thresholds up by how
far that median is above its kind's (`KindThresholds.centre_q`), never more than
`centre_max_shift_q`. An impostor cannot walk it: reports at or above the device's step-up
threshold never move the median, and the shift is bounded whatever the median does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from agent.errors import AgentError
from cloud_bridge.risk import clone, travel
from cloud_bridge.risk.calibration import KindThresholds
from cloud_bridge.risk.fingerprint import Drift, IdentityScales, distance, parse
from cloud_bridge.risk.policy import SignalPolicy
from cloud_bridge.risk.skew import Envelope
from cloud_bridge.risk.verdict import Evidence, Scored
from protocol import messages as m

DIGEST_BYTES = 8
FINGERPRINT_DRIFT = "fingerprint_drift"
Q16 = 16  # the median tracker's fixed point: 1/16 q


@dataclass(frozen=True, slots=True)
class Centre:
    """The running median of a device's allowed scores, in 1/16 q (stochastic approximation:
    a step toward each new score), and how many scores it has seen."""

    q16: int = 0
    reports: int = 0

    def update(self, q: int, policy: SignalPolicy) -> Centre:
        if self.reports == 0:
            return Centre(q * Q16, 1)
        target, step = q * Q16, policy.centre_step_q16
        if target > self.q16:
            q16 = self.q16 + min(step, target - self.q16)
        else:
            q16 = self.q16 - min(step, self.q16 - target)
        return Centre(q16, self.reports + 1)

    def shift_q(self, kt: KindThresholds, policy: SignalPolicy) -> int:
        """How far this device's thresholds move up: its median above its kind's, bounded."""
        if kt.centre_q is None or self.reports < policy.centre_min_reports:
            return 0
        return max(0, min(policy.centre_max_shift_q, self.q16 // Q16 - kt.centre_q))


@dataclass(frozen=True)
class Memory:
    """What the signals remember of one device (see the module docstring)."""

    clone: clone.CloneState = field(default_factory=clone.CloneState)
    drift: Drift = field(default_factory=Drift)
    centre: Centre = field(default_factory=Centre)


@dataclass(frozen=True, slots=True)
class Seen:
    """One new data event of a device as the signals see it: its header, the bridge's receive
    time, and for a report its fingerprint (wire form); its location if it has one.

    Only reports enter the clone model (`clock`): the agent numbers messages as it sends them
    and sends a trigger before the reports queued ahead of it, so a trigger's mono_ms is out
    of sequence order with the reports' after any outage, while reports (and triggers) among
    themselves keep it. One report a minute is plenty for the clock and the fingerprints."""

    seq: int
    boot: int
    mono_ms: int
    received_ms: int
    fingerprint: Mapping[int, int] | None = None
    location: travel.Fix | None = None
    clock: bool = True  # a report: feed the clone model


@dataclass(frozen=True, slots=True)
class Observed:
    memory: Memory
    evidence: tuple[str, ...]  # codes, in a fixed order
    points: int  # the sum of their weights


def settle(
    memory: Memory, q: int | None, fresh: bool, step_up_q: int, policy: SignalPolicy
) -> Memory:
    """The memory after the verdict: a fresh score under the device's (re-centred) step-up
    threshold moves its median; any other score leaves it (the bound on an impostor)."""
    if q is None or not fresh or q >= step_up_q:
        return memory
    return replace(memory, centre=memory.centre.update(q, policy))


def digest(fingerprint: Mapping[int, int]) -> bytes:
    """A short digest of a fingerprint's content (a real sensor never repeats all of it)."""
    text = ",".join(f"{k}:{v}" for k, v in sorted(fingerprint.items()))
    return hashlib.blake2b(text.encode(), digest_size=DIGEST_BYTES).digest()


def _distance(
    fingerprint: Mapping[int, int] | None,
    baseline: Mapping[int, int],
    scales: IdentityScales | None,
) -> float | None:
    if fingerprint is None or scales is None or not baseline:
        return None
    try:
        return distance(parse(fingerprint), parse(baseline), scales)
    except (AgentError, ValueError, OverflowError, ArithmeticError):
        return None  # a malformed fingerprint is the server score's `bad_fingerprint`


def observe(
    memory: Memory,
    seen: Seen,
    baseline: Mapping[int, int],
    scales: IdentityScales | None,
    policy: SignalPolicy,
) -> Observed:
    """The next memory and the evidence of one new event (call once per event the replay
    window accepted as new)."""
    dist = _distance(seen.fingerprint, baseline, scales)
    codes: list[str] = []
    state = memory.clone
    if seen.clock:
        obs = clone.Observation(
            seen.seq,
            seen.boot,
            seen.mono_ms,
            seen.received_ms * 1000,
            dist,
            None if seen.fingerprint is None else digest(seen.fingerprint),
        )
        check = clone.observe(memory.clone, obs, policy.clone)
        state, codes = check.state, [e.value for e in check.evidence]
    drift = memory.drift
    if dist is not None:
        dp = policy.drift
        drift = drift.update(dist, dp)
        if drift.drifting(dp):
            codes.append(FINGERPRINT_DRIFT)
    after = replace(memory, clone=state, drift=drift)
    return Observed(after, tuple(codes), sum(policy.weight(c) for c in codes))


@dataclass(frozen=True, slots=True)
class Assessed:
    evidence: Evidence  # for the verdict
    memory: Memory  # to keep


def assess(
    memory: Memory,
    seen: Seen,
    baseline: Mapping[int, int],
    scales: IdentityScales | None,
    kt: KindThresholds | None,
    scored: Scored,
    policy: SignalPolicy,
) -> Assessed:
    """Everything the per-device signals add to one event's verdict: `observe`, then the
    device's re-centring shift (from the median before this event), then `settle` with the
    event's own server score (the same function for the bridge and `tools.eval_risk.live`)."""
    found = observe(memory, seen, baseline, scales, policy)
    if kt is None:
        return Assessed(Evidence(found.evidence, found.points), found.memory)
    shift = found.memory.centre.shift_q(kt, policy)
    step_up_q = kt.shifted(shift).step_up_q
    after = settle(found.memory, scored.output_q, scored.fresh, step_up_q, policy)
    return Assessed(Evidence(found.evidence, found.points, shift), after)


def seen_of(msg: m.Report | m.Trigger, received_ms: int) -> Seen:
    """What the signals take of a report or trigger received at `received_ms` (an empty
    fingerprint is none: the server score calls it `bad_fingerprint`)."""
    fp = msg.fingerprint if isinstance(msg, m.Report) and msg.fingerprint else None
    fix = fix_of(msg.location, msg.ts_ms, msg.sender)
    return Seen(msg.seq, msg.boot, msg.mono_ms, received_ms, fp, fix, isinstance(msg, m.Report))


def fix_of(location: Any, ts_ms: int, device: str) -> travel.Fix | None:
    """A message's optional `location` as a travel fix (None when absent or unusable)."""
    if location is None:
        return None
    try:
        return travel.Fix(
            ts_ms, location.lat_e7, location.lon_e7, location.accuracy_m, location.source, device
        )
    except travel.TravelError:
        return None


# ---- persistence (the store keeps the text; the shape lives here, beside the values) -------


def to_json(memory: Memory) -> str:
    c, env = memory.clone, memory.clone.envelope
    doc = {
        "v": 1,
        "boot": c.boot,
        "seqs": [list(p) for p in c.seqs],
        "env": [
            list(env.origin) if env.origin else None,
            [list(p) for p in env.hull],
            env.points,
            env.sum_x,
            env.last_x,
        ],
        "crystal": c.crystal_skew_ppm,
        "far": [int(b) for b in c.fp_far],
        "dig": [d.hex() for d in c.digests],
        "drift": [memory.drift.mean, memory.drift.reports],
        "centre": [memory.centre.q16, memory.centre.reports],
    }
    return json.dumps(doc, separators=(",", ":"))


def from_json(text: str) -> Memory:
    """A stored memory; an empty or unreadable text is a fresh one (the signals relearn)."""
    if not text:
        return Memory()
    try:
        doc = json.loads(text)
        origin, hull, points, sum_x, last_x = doc["env"]
        env = Envelope(
            None if origin is None else (int(origin[0]), int(origin[1])),
            tuple((float(x), float(y)) for x, y in hull),
            int(points),
            float(sum_x),
            float(last_x),
        )
        state = clone.CloneState(
            boot=int(doc["boot"]),
            seqs=tuple((int(s), int(m)) for s, m in doc["seqs"]),
            envelope=env,
            crystal_skew_ppm=None if doc["crystal"] is None else float(doc["crystal"]),
            fp_far=tuple(bool(b) for b in doc["far"]),
            digests=tuple(bytes.fromhex(d) for d in doc["dig"]),
        )
        # A memory of before migration 011 has a "fix": travel is per user now; it is dropped.
        return Memory(
            state,
            Drift(float(doc["drift"][0]), int(doc["drift"][1])),
            Centre(int(doc["centre"][0]), int(doc["centre"][1])),
        )
    except (ValueError, TypeError, KeyError, IndexError):
        return Memory()

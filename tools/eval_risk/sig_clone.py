"""Clone detection: clock, sequence, boot and fingerprint evidence (cloud_bridge.risk.clone).

    python -m tools.eval_risk clone --json [--seed N] [--quick]
    python -m tools.eval_risk.sig_clone --json [--seed N] [--quick]

A simulated day of 1,000 genuine boards (tools.eval_risk.sig_fingerprint.Board, all kinds):
a report every 5 minutes, 0-2 reboots, an offline spell of up to 3 hours in half of them whose
reports arrive in a burst at reconnection, network delay 5-50 ms + exponential(2-50 ms), and
the host crystal's skew following a daily temperature swing of 2-10 C (agent.simulator.clock's
parabola). Every report carries a fresh fingerprint of its board; every message goes through
`clone.observe` with the default policy. `false_alarms` counts boards with any evidence.

Then clones: another board of the same kind, with a copy of the victim's key and state,
starting at a random point of the victim's day:

    swap_same_boot    the victim falls silent; the clone carries on with its seq and boot
    swap_reboot       the same, claiming a reboot (boot + 1, its own mono_ms)
    concurrent        the victim carries on; the clone sends too, from the copied seq
    replayed_fp       swap_reboot, sending fingerprints from the copied outbox (the victim's
                      last reports) instead of its own

`max_reports_to_detect` is the most clone messages any of these needed before the first
evidence (goal: within 10). `forged_fp` is reported apart: a clone that somehow sends fresh
fingerprints of the victim's own board leaves only its crystal to tell it, so it is caught by
skew_mismatch hours later or not at all (`forged_fp_detected_within_day`).
"""

from __future__ import annotations

import hashlib
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from agent.simulator.device import rng_for
from cloud_bridge.risk.clone import ClonePolicy, CloneState, Evidence, Observation, observe
from cloud_bridge.risk.fingerprint import IdentityScales, distance
from tools.eval_risk import signal_main
from tools.eval_risk.sig_fingerprint import Board, _kind, train_scales

GOAL_REPORTS = 10
DAY_S = 86_400
PERIOD_S = 300.0
BURST_GAP_US = 50_000  # a reconnecting agent sends its backlog 50 ms apart
GENUINE_SEED, CLONE_SEED = 600_000, 650_000
SEED_STRIDE = 2_000
CLONE_REPORTS = 20  # swap and concurrent clones are followed this far
SCENARIOS = ("swap_same_boot", "swap_reboot", "concurrent", "replayed_fp")
_STREAM = 4_106


@dataclass(frozen=True)
class Sent:
    """One message as the bridge receives it; `session` indexes the sending board's capture
    (or, for a replay, a capture of the victim)."""

    seq: int
    boot: int
    mono_ms: int
    received_us: int
    board: Board
    session: int
    clone: bool = False


@dataclass(frozen=True)
class Climate:
    """A daily temperature swing that moves the crystal's skew."""

    mean_c: float
    amp_c: float
    phase: float

    def temp_c(self, t_s: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.mean_c + self.amp_c * np.sin(2 * math.pi * t_s / DAY_S + self.phase)
        return out


def device_ms(board: Board, climate: Climate, t_s: np.ndarray) -> np.ndarray:
    """Elapsed time on the board's crystal (ms) at true times t_s (sorted, from t_s[0])."""
    skew = np.array([board.skew_ppm_at(float(c)) for c in climate.temp_c(t_s)]) * 1e-6
    rate = 1.0 + skew
    steps = np.diff(t_s) * (rate[1:] + rate[:-1]) / 2  # trapezoid
    out: np.ndarray = np.concatenate([[0.0], np.cumsum(steps)]) * 1000.0
    return out


def _delay_us(rng: np.random.Generator, n: int) -> np.ndarray:
    base = rng.uniform(5_000, 50_000)
    mean = rng.uniform(2_000, 50_000)
    out: np.ndarray = base + rng.exponential(mean, n)
    return out


def _climate(rng: np.random.Generator, board: Board) -> Climate:
    return Climate(board.profile.temp_mean_c, rng.uniform(2.0, 10.0), rng.uniform(0, 2 * math.pi))


def genuine_day(board: Board, rng: np.random.Generator) -> list[Sent]:
    """The messages of one board's day, in the order the bridge receives them."""
    n = int(DAY_S / PERIOD_S)
    t = np.arange(n) * PERIOD_S + rng.uniform(0, PERIOD_S)
    reboots = sorted(rng.choice(np.arange(1, n), rng.integers(0, 3), replace=False).tolist())
    climate = _climate(rng, board)
    clock = device_ms(board, climate, t)
    arrive = t * 1e6 + _delay_us(rng, n)
    if rng.random() < 0.5:  # an offline spell: its reports wait for the reconnection
        first = int(rng.integers(1, n - 40))
        spell = int(rng.integers(2, 37))  # 10 min to 3 h
        reconnect = arrive[first + spell]
        for j, k in enumerate(range(first, first + spell)):
            arrive[k] = reconnect - (spell - j) * BURST_GAP_US
    boot, mono0, seg_start = 7, rng.uniform(3.6e6, 8.64e8), 0
    out = []
    for k in range(n):
        if k in reboots:
            boot, mono0, seg_start = boot + 1, rng.uniform(15_000, 60_000), k
        mono = mono0 + clock[k] - clock[seg_start]
        out.append(Sent(100 + k, boot, int(mono), int(arrive[k]), board, k))
    return out


Memo = dict[tuple[int, int], tuple[float, bytes]]


def _check(
    messages: list[Sent],
    victim: Board,
    scales: IdentityScales,
    policy: ClonePolicy,
    memo: Memo | None = None,
) -> Iterator[tuple[Sent, tuple[Evidence, ...]]]:
    """Each message with the evidence `observe` found in it. `memo` keeps each capture's
    (distance to the victim, digest), so the clone scenarios replay a victim's day without
    rendering its captures again."""
    state = CloneState()
    for m in messages:
        key = (id(m.board), m.session)
        if memo is None or key not in memo:
            fp = m.board.session(m.session)
            wire = repr(sorted(fp.to_wire().items())).encode()
            found = (distance(fp, victim.baseline, scales), hashlib.sha256(wire).digest()[:16])
            if memo is not None:
                memo[key] = found
        dist, digest = memo[key] if memo is not None else found
        obs = Observation(
            seq=m.seq,
            boot=m.boot,
            mono_ms=m.mono_ms,
            received_us=m.received_us,
            distance=dist,
            fingerprint_digest=digest,
        )
        check = observe(state, obs, policy)
        state = check.state
        yield m, check.evidence


def clone_messages(
    scenario: str, day: list[Sent], clone: Board, rng: np.random.Generator, reports: int
) -> list[Sent]:
    """The victim's messages with a clone's merged in, in receive order."""
    cut = int(rng.integers(60, len(day) - 60))
    copied = day[cut - 1]  # the state the clone copied: last message sent
    start_s = copied.received_us / 1e6 + (
        rng.uniform(PERIOD_S, 2 * 3600) if scenario != "concurrent" else rng.uniform(0, PERIOD_S)
    )
    t = start_s + np.arange(reports) * PERIOD_S
    clock = device_ms(clone, _climate(rng, clone), t)
    mono0 = rng.uniform(3.6e6, 8.64e8) if scenario != "swap_reboot" else rng.uniform(15e3, 60e3)
    boot = copied.boot + (0 if scenario in ("swap_same_boot", "concurrent") else 1)
    arrive = t * 1e6 + _delay_us(rng, reports)
    own_sessions = [10_000 + k for k in range(reports)]
    if scenario == "replayed_fp":  # the victim's last reports' fingerprints, from the outbox
        mono0 = rng.uniform(15e3, 60e3)
        sessions = [day[cut - 1 - (k % 20)].session for k in range(reports)]
        boards = [copied.board] * reports
    elif scenario == "forged_fp":  # fresh captures of the victim's own board: a perfect forgery
        mono0 = rng.uniform(15e3, 60e3)
        sessions = [20_000 + k for k in range(reports)]
        boards = [copied.board] * reports
    else:
        sessions, boards = own_sessions, [clone] * reports
    clones = [
        Sent(copied.seq + 1 + k, boot, int(mono0 + clock[k]), int(arrive[k]), boards[k],
             sessions[k], clone=True)
        for k in range(reports)
    ]  # fmt: skip
    genuine = day[:cut] if scenario != "concurrent" else day
    merged = sorted(genuine + clones, key=lambda m: m.received_us)
    return merged


def reports_to_detect(
    messages: list[Sent], victim: Board, scales: IdentityScales, policy: ClonePolicy, memo: Memo
) -> tuple[int | None, tuple[Evidence, ...]]:
    """Clone messages received up to the first evidence (None: never), and that evidence."""
    seen = 0
    for m, evidence in _check(messages, victim, scales, policy, memo):
        seen += int(m.clone)
        if evidence:
            return (seen if seen else None), evidence
    return None, ()


def evaluate(seed: int, quick: bool) -> dict[str, Any]:
    genuine, victims, forged = (30, 20, 5) if quick else (1000, 200, 40)
    scales = train_scales(seed, 40 if quick else 200, 4)
    policy = ClonePolicy()
    base = GENUINE_SEED + seed * SEED_STRIDE
    false_alarms, alarm_reasons = 0, set()
    days: list[list[Sent]] = []
    memos: list[Memo] = []
    for i in range(genuine):
        board = Board(base + i, _kind(i))
        day = genuine_day(board, rng_for(_STREAM, seed, i))
        memo: Memo = {}
        for _, evidence in _check(day, board, scales, policy, memo):
            if evidence:
                false_alarms += 1
                alarm_reasons.update(evidence)
                break
        if i < victims:
            days.append(day)
            memos.append(memo)
    per: dict[str, list[int | None]] = {s: [] for s in SCENARIOS}
    first_evidence: dict[str, set[str]] = {s: set() for s in SCENARIOS}
    for i, day in enumerate(days):
        victim = day[0].board
        clone = Board(CLONE_SEED + seed * SEED_STRIDE + i, victim.kind)
        for j, scenario in enumerate(SCENARIOS):
            rng = rng_for(_STREAM + 1, seed, i, j)
            merged = clone_messages(scenario, day, clone, rng, CLONE_REPORTS)
            n, evidence = reports_to_detect(merged, victim, scales, policy, memos[i])
            per[scenario].append(n)
            first_evidence[scenario].update(evidence)
    forged_caught: list[int | None] = []
    for i, day in enumerate(days[:forged]):
        clone = Board(CLONE_SEED + seed * SEED_STRIDE + i, day[0].board.kind)
        rng = rng_for(_STREAM + 2, seed, i)
        merged = clone_messages("forged_fp", day, clone, rng, int(DAY_S / PERIOD_S))
        found = reports_to_detect(merged, day[0].board, scales, policy, memos[i])
        forged_caught.append(found[0])
    detected = [n for ns in per.values() for n in ns]
    worst = max((n if n is not None else math.inf) for n in detected)
    caught_forged = [n for n in forged_caught if n is not None]
    return {
        "max_reports_to_detect": worst if worst != math.inf else None,
        "false_alarms": false_alarms,
        "genuine_boards": genuine,
        "genuine_messages": genuine * int(DAY_S / PERIOD_S),
        "false_alarm_evidence": sorted(alarm_reasons),
        "clones_per_scenario": victims,
        "per_scenario": {
            s: {
                "undetected": sum(1 for n in ns if n is None),
                "max_reports": max((n for n in ns if n is not None), default=None),
                "median_reports": float(np.median([n for n in ns if n is not None] or [0])),
                "first_evidence": sorted(first_evidence[s]),
            }
            for s, ns in per.items()
        },
        "forged_fp_detected_within_day": f"{len(caught_forged)}/{len(forged_caught)}",
        "forged_fp_median_reports": float(np.median(caught_forged)) if caught_forged else None,
        "goal": f"every clone caught within {GOAL_REPORTS} reports; no alarm on 1,000 genuine "
        "boards over a simulated day",
        "met": bool(worst <= GOAL_REPORTS and false_alarms == 0 and genuine >= 1000),
    }


def main(argv: list[str] | None = None) -> int:
    return signal_main(
        "sig_clone", __doc__, evaluate, argv, quick_help="30 boards (for tests)", seeds=20
    )


if __name__ == "__main__":
    sys.exit(main())

"""Transaction-sequence plausibility: fraud caught (TP) against genuine events flagged (FP).

    python -m tools.eval_risk sequence --json [--seed N] [--quick]
    python -m tools.eval_risk.sig_sequence --json [--seed N] [--quick]

A simulation in the style of Srivastava et al. (IEEE TDSC 2008, section 6): every user has a
routine (which devices they own, a Markov chain over the kinds of event those devices raise,
their own amount and hour habits per kind). The cloud fits each user's model
(cloud_bridge.risk.sequence) on their first TRAIN events, then judges the next TEST genuine
events (FP: the share flagged) and, for every user, a thief's burst of 1-6 events from one of
the user's compromised devices (TP: the share of thief events flagged). Half the thieves are
greedy (amounts above the user's usual), half careful (amounts of the population's usual for
the kind); all act at any hour, and for the kinds their device can raise. The paper's per-card
HMM reached TP 0.42-0.64 at FP 0.02-0.06.

`live_tp` and `live_fp` measure what the bridge runs (cloud_bridge.risk.user_signals with the
default `[risk_signals]`) on the same users: no population model (a flat prior), the user's
model refitted before each trigger from their latest `seq_window` allowed triggers, judging from
the `seq_min_events`-th on, and learning the triggers it did not flag (the thief's too, when it
misses them) and the ones it flagged that the owner confirms on the step-up (every genuine one:
the simulated owner always confirms, a thief never does). FP counts the same test period
(events TRAIN+1 to TRAIN+TEST).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from cloud_bridge.risk import sequence as sq
from cloud_bridge.risk import user_signals as us
from cloud_bridge.risk.policy import SignalPolicy
from tools.eval_risk import signal_main

TRAIN, TEST = 60, 60
TP_GOAL, FP_GOAL = 0.65, 0.02
DEVICE_KINDS = {
    "phone": ("draw", "emergency"),
    "wearable": ("health_streak", "emergency"),
    "fridge": ("restock",),
    "ev": ("ev_tier",),
}
# Median amount (fen) of a user's events of a kind: drawn per user from this range; rate-tier
# events carry no amount.
AMOUNT_RANGE_FEN = {
    "draw": (20_000, 300_000),
    "emergency": (50_000, 500_000),
    "restock": (5_000, 30_000),
}


@dataclass(frozen=True)
class User:
    devices: dict[str, tuple[str, ...]]  # device id -> kinds it raises
    kinds: tuple[str, ...]
    transition: npt.NDArray[np.float64]  # kinds x kinds
    median_fen: dict[str, float]
    hour_centre: dict[str, float]
    device_pref: dict[str, dict[str, float]]  # kind -> device id -> probability

    @classmethod
    def draw(cls, rng: np.random.Generator, uid: int) -> User:
        owned = ["phone"] + [k for k in ("wearable", "fridge", "ev") if rng.random() < 0.6]
        devices = {f"u{uid}-{k}": DEVICE_KINDS[k] for k in owned}
        kinds = tuple(sorted({k for ks in devices.values() for k in ks}))
        transition = rng.dirichlet(np.full(len(kinds), 0.6), size=len(kinds))
        median = {
            k: float(np.exp(rng.uniform(*np.log(AMOUNT_RANGE_FEN[k]))))
            for k in kinds
            if k in AMOUNT_RANGE_FEN
        }
        hours = {k: float(rng.uniform(7, 23)) for k in kinds}
        pref: dict[str, dict[str, float]] = {}
        for k in kinds:
            ids = [d for d, ks in devices.items() if k in ks]
            w = rng.dirichlet(np.full(len(ids), 2.0))
            pref[k] = dict(zip(ids, w.tolist(), strict=True))
        return cls(devices, kinds, transition, median, hours, pref)

    def events(self, rng: np.random.Generator, n: int) -> list[sq.Event]:
        out = []
        i = int(rng.integers(len(self.kinds)))
        for _ in range(n):
            i = int(rng.choice(len(self.kinds), p=self.transition[i]))
            kind = self.kinds[i]
            ids = list(self.device_pref[kind])
            device = ids[int(rng.choice(len(ids), p=list(self.device_pref[kind].values())))]
            amount = (
                int(self.median_fen[kind] * rng.lognormal(0.0, 0.4))
                if kind in self.median_fen
                else 0
            )
            hour = round(rng.normal(self.hour_centre[kind], 1.5)) % 24
            out.append(sq.Event(kind, amount, hour, device))
        return out

    def thief(self, rng: np.random.Generator, n: int, greedy: bool) -> list[sq.Event]:
        money = [d for d, ks in self.devices.items() if set(ks) & set(AMOUNT_RANGE_FEN)]
        device = money[int(rng.integers(len(money)))]
        out = []
        for _ in range(n):
            kinds = [k for k in self.devices[device] if k in AMOUNT_RANGE_FEN]
            kind = kinds[int(rng.integers(len(kinds)))]
            lo, hi = AMOUNT_RANGE_FEN[kind]
            if greedy:
                amount = int(self.median_fen[kind] * rng.uniform(2.0, 5.0))
            else:
                amount = int(np.exp(rng.uniform(np.log(lo), np.log(hi))))
            out.append(sq.Event(kind, amount, int(rng.integers(24)), device))
        return out


def run(seed: int, users: int, policy: sq.Policy) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    people = [User.draw(rng, u) for u in range(users)]
    streams = [p.events(rng, TRAIN + TEST) for p in people]
    pop = sq.population([s[:TRAIN] for s in streams])
    flagged_genuine = genuine = flagged_fraud = fraud = 0
    for u, person in enumerate(people):
        model = sq.fit(streams[u][:TRAIN], pop)
        state = sq.State(prev_kind=streams[u][TRAIN - 1].kind)
        for e in streams[u][TRAIN:]:
            s = sq.step(state, model, e, policy)
            genuine, flagged_genuine = genuine + 1, flagged_genuine + s.flagged
            state = s.state
        # The thief strikes after the test period, from the state the genuine events left.
        burst = person.thief(rng, int(rng.integers(1, 7)), greedy=u % 2 == 0)
        for e in burst:
            s = sq.step(state, model, e, policy)
            fraud, flagged_fraud = fraud + 1, flagged_fraud + s.flagged
            state = s.state
    return {
        "tp": round(flagged_fraud / fraud, 4),
        "fp": round(flagged_genuine / genuine, 4),
        "fraud_events": fraud,
        "genuine_events": genuine,
    }


def run_live(seed: int, users: int, policy: SignalPolicy) -> dict[str, Any]:
    """The bridge's online model on the users and thieves of `run` (the same draws)."""
    rng = np.random.default_rng(seed)
    people = [User.draw(rng, u) for u in range(users)]
    streams = [p.events(rng, TRAIN + TEST) for p in people]
    flagged_genuine = genuine = flagged_fraud = fraud = 0
    for u, person in enumerate(people):
        mem = us.UserMemory()

        def judged(e: sq.Event, owner: bool) -> bool:
            nonlocal mem
            step = us.observe(mem, None, e, policy)
            flagged = us.IMPLAUSIBLE_SEQUENCE in step.evidence
            if not flagged:
                mem = us.learn(step.memory, e, policy)
            else:  # stepped up: the owner confirms, a thief cannot
                mem = us.confirmed(step.memory, e, policy) if owner else step.memory
            return flagged

        for i, e in enumerate(streams[u]):
            flagged = judged(e, owner=True)
            if i >= TRAIN:
                genuine, flagged_genuine = genuine + 1, flagged_genuine + flagged
        for e in person.thief(rng, int(rng.integers(1, 7)), greedy=u % 2 == 0):
            fraud, flagged_fraud = fraud + 1, flagged_fraud + judged(e, owner=False)
    return {
        "live_tp": round(flagged_fraud / fraud, 4),
        "live_fp": round(flagged_genuine / genuine, 4),
    }


def evaluate(seed: int, quick: bool) -> dict[str, Any]:
    users = 300 if quick else 3000
    policy = sq.Policy()
    result = run(seed, users, policy)
    live = SignalPolicy()
    result.update(run_live(seed, users, live))
    result.update(live_min_events=live.seq_min_events, live_window=live.seq_window)
    result.update(
        users=users,
        train_events=TRAIN,
        drift_nats=policy.drift,
        alarm_nats=policy.alarm,
        goal=f"TP >= {TP_GOAL} at FP <= {FP_GOAL} per event",
        met=result["tp"] >= TP_GOAL and result["fp"] <= FP_GOAL,
    )
    return result


def main(argv: list[str] | None = None) -> int:
    return signal_main(
        "sig_sequence", __doc__, evaluate, argv, quick_help="300 users instead of 3000"
    )


if __name__ == "__main__":
    sys.exit(main())

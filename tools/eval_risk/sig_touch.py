"""Touch behaviour: equal error rate across sessions on simulated users (Touchalytics style).

    python -m tools.eval_risk touch --json [--seed N] [--quick]
    python -m tools.eval_risk.sig_touch --json [--seed N] [--quick]

Every simulated user (agent.simulator.swipe) gives four sessions of 40 scrolling strokes. The
template is enrolled on sessions 1 and 2; genuine attempts are windows of WINDOW strokes from
sessions 3 and 4 (another day's posture and grip), impostor attempts the same windows of every
other user against this user's template (zero-effort impostors, as in Touchalytics). One global
threshold for all users (stricter than the per-user thresholds of most papers); the equal error
rate is where false accepts and false rejects meet. Scaled Manhattan (the matcher) and
Euclidean (the comparison) are measured on the same attempts.

The decision as the bridge runs it is measured too (`confirm_*` keys): simulated phones
(agent.simulator.SimDevice) confirm step-ups with CONFIRM_SWIPES swipes each, the default
`[risk_signals]` touch policy enrols each user on their first confirmations (each in a session
of its own), then every later confirmation of the owner is judged and learnt as the bridge does
(`confirm_false_reject`: the owner refused), and the phone's stranger (the simulated impostor)
confirms once against every template (`confirm_false_accept`: the stranger let through).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from agent.commands import CONFIRM_SWIPES
from agent.simulator import SimDevice
from agent.simulator.swipe import SwipeHabit
from agent.strokes import features
from cloud_bridge.risk import touch
from cloud_bridge.risk.policy import SignalPolicy
from protocol.strokes import from_fixed, to_fixed
from tools.eval_risk import signal_main

WINDOW = 10  # strokes a decision looks at: about one page of reading
SESSIONS, ENROL_SESSIONS = 4, 2
EER_GOAL = 0.03

Matcher = Callable[[touch.Template, Sequence[Sequence[float]]], float]
MATCHERS: dict[str, Matcher] = {
    "scaled_manhattan": touch.scaled_manhattan,
    "euclidean": touch.euclidean,
}


def equal_error_rate(genuine: Sequence[float], impostor: Sequence[float]) -> float:
    """The error rate where false rejects (genuine distance over the threshold) and false
    accepts (impostor distance at or under it) are closest: their mean there."""
    g, i = np.sort(np.asarray(genuine)), np.sort(np.asarray(impostor))
    best, at = 2.0, 0.0
    for t in np.concatenate([g, i]):
        frr = 1.0 - np.searchsorted(g, t, side="right") / len(g)
        far = np.searchsorted(i, t, side="right") / len(i)
        if abs(frr - far) < best:
            best, at = abs(frr - far), (frr + far) / 2.0
    return float(at)


def _windows(strokes: list[tuple[float, ...]], size: int) -> list[list[tuple[float, ...]]]:
    return [strokes[k : k + size] for k in range(0, len(strokes) - size + 1, size)]


def attempts(seed: int, users: int, window: int) -> dict[str, tuple[list[float], list[float]]]:
    """(genuine, impostor) distances per matcher."""
    rng = np.random.default_rng(seed)
    habits = [SwipeHabit.draw(rng) for _ in range(users)]
    sessions = [[[features(s) for s in h.session(rng)] for _ in range(SESSIONS)] for h in habits]
    templates = [touch.enrol([f for s in ss[:ENROL_SESSIONS] for f in s]) for ss in sessions]
    probes = [[w for s in ss[ENROL_SESSIONS:] for w in _windows(s, window)] for ss in sessions]
    out: dict[str, tuple[list[float], list[float]]] = {}
    for name, match in MATCHERS.items():
        genuine, impostor = [], []
        for u, template in enumerate(templates):
            genuine += [match(template, w) for w in probes[u]]
            for v in range(users):
                if v != u:  # one window of every other user, a different one per pair
                    impostor.append(match(template, probes[v][(u + v) % len(probes[v])]))
        out[name] = (genuine, impostor)
    return out


def confirmations(seed: int, phones: int, later: int) -> tuple[float, float]:
    """(false reject, false accept) of the touch decision on step-up confirmations."""
    policy = SignalPolicy().touch
    rejected = accepted = 0
    for n in range(phones):
        phone = SimDevice(seed * 100_003 + n, "phone")
        memory = touch.Memory()
        for session in range(policy.enrol + later):
            strokes = _sent(phone, session, stranger=False)
            judged = touch.judge(memory, strokes, policy)
            rejected += judged.evidence in touch.REFUSED
            memory = touch.learn(memory, strokes, judged, policy)
        judged = touch.judge(memory, _sent(phone, 10_000, stranger=True), policy)
        accepted += judged.evidence not in touch.REFUSED
    return rejected / (phones * later), accepted / phones


def _sent(phone: SimDevice, session: int, stranger: bool) -> list[tuple[float, ...]]:
    """A confirmation's swipes as the bridge reads them (fixed point on the wire)."""
    swipes = phone.swipes(session, CONFIRM_SWIPES, stranger)
    return [from_fixed(to_fixed(features(s))) for s in swipes]


def evaluate(seed: int, quick: bool) -> dict[str, Any]:
    users = 40 if quick else 200
    per_window = {}
    for window in (1, WINDOW):
        rates = {
            name: round(equal_error_rate(g, i), 4)
            for name, (g, i) in attempts(seed, users, window).items()
        }
        per_window[window] = rates
    eer = per_window[WINDOW]["scaled_manhattan"]
    false_reject, false_accept = confirmations(seed, users * 2, later=4)
    return {
        "confirm_false_reject": round(false_reject, 4),
        "confirm_false_accept": round(false_accept, 4),
        "confirm_phones": users * 2,
        "eer": eer,
        "eer_euclidean": per_window[WINDOW]["euclidean"],
        "eer_single_stroke": per_window[1]["scaled_manhattan"],
        "eer_single_stroke_euclidean": per_window[1]["euclidean"],
        "window_strokes": WINDOW,
        "users": users,
        "goal": f"EER <= {EER_GOAL:.0%} across sessions, windows of {WINDOW} strokes",
        "met": eer <= EER_GOAL,
    }


def main(argv: list[str] | None = None) -> int:
    return signal_main("sig_touch", __doc__, evaluate, argv, quick_help="40 users instead of 200")


if __name__ == "__main__":
    sys.exit(main())

"""Clone evidence from clock, sequence, boot and fingerprint (cloud_bridge.risk.clone)."""

from __future__ import annotations

import pytest

from cloud_bridge.risk import clone as cl
from cloud_bridge.risk.clone import Evidence as E
from tools.eval_risk import sig_clone

POLICY = cl.ClonePolicy()
T0_US = 1_000_000_000


def _live(
    n: int, skew_ppm: float, boot: int = 3, seq0: int = 10, mono0: int = 50_000_000,
    t0_us: int = T0_US, period_s: int = 60,
) -> list[cl.Observation]:  # fmt: skip
    """A device reporting every period_s, each arriving 5-8 ms after it was made."""
    out = []
    for k in range(n):
        t_ms = k * period_s * 1000
        mono = mono0 + int(t_ms * (1 + skew_ppm * 1e-6))
        delay_us = 5000 + (k * 7919) % 3000  # a fixed scatter, so the hull has inner vertices
        out.append(cl.Observation(seq0 + k, boot, mono, t0_us + t_ms * 1000 + delay_us, 5.0))
    return out


def _run(
    observations: list[cl.Observation], state: cl.CloneState | None = None
) -> tuple[cl.CloneState, list[tuple[E, ...]]]:
    state = state or cl.CloneState()
    found = []
    for obs in observations:
        check = cl.observe(state, obs, POLICY)
        state = check.state
        found.append(check.evidence)
    return state, found


def _obs(prev: cl.Observation, **changes: object) -> cl.Observation:
    values = {
        "seq": prev.seq + 1,
        "boot": prev.boot,
        "mono_ms": prev.mono_ms + 60_000,
        "received_us": prev.received_us + 60_000_000,
        "distance": 5.0,
        "fingerprint_digest": None,
    }
    values.update(changes)
    return cl.Observation(**values)  # type: ignore[arg-type]


def test_genuine_live_stream__no_evidence() -> None:
    state, found = _run(_live(200, 12.0))
    assert not any(found)
    fit = state.envelope.fit()
    assert fit is not None
    assert fit.skew_ppm == pytest.approx(12.0, abs=0.1)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"boot": 2}, E.BOOT_REGRESSION),
        ({"seq": 29, "mono_ms": 1}, E.SEQ_CONFLICT),  # 29 seen, with another mono_ms
        ({"seq": 15, "mono_ms": 1}, E.SEQ_CONFLICT),
        ({"mono_ms": 40_000_000}, E.MONO_REGRESSION),  # later seq, earlier clock
        ({"seq": 9, "mono_ms": 50_000_001}, E.MONO_REGRESSION),  # before the first, but later
        ({"mono_ms": 50_000_000 + 20 * 60_000 + 60_000 + 10_000}, E.CLOCK_AHEAD),  # 10 s ahead
    ],
)
def test_clock_evidence__and_the_clock_model_is_left_as_it_was(
    changes: dict[str, int], expected: E
) -> None:
    state, _ = _run(_live(20, 0.0))
    check = cl.observe(state, _obs(_live(20, 0.0)[-1], **changes), POLICY)
    assert check.evidence == (expected,)
    assert check.clone
    assert (check.state.envelope, check.state.seqs, check.state.boot) == (
        state.envelope,
        state.seqs,
        state.boot,
    )


@pytest.mark.parametrize(
    ("mono_ms", "evidence"),
    [
        (50_000_000 + 5 * 60_000 + 30_000, ()),  # between its neighbours' clocks: a late one
        (50_000_000 + 7 * 60_000, (E.MONO_REGRESSION,)),  # later than the next seq's clock
        (50_000_000 + 4 * 60_000, (E.MONO_REGRESSION,)),  # earlier than the previous seq's
    ],
)
def test_mono_between_the_neighbouring_seqs(mono_ms: int, evidence: tuple[E, ...]) -> None:
    # Seqs 10, 12, 14, ... each a minute apart; seq 21 (made between 20 and 22) arrives late.
    obs = [_obs(o, seq=10 + 2 * (o.seq - 10), mono_ms=o.mono_ms, received_us=o.received_us)
           for o in _live(20, 0.0)]  # fmt: skip
    state, _ = _run(obs)
    late = _obs(obs[-1], seq=21, mono_ms=mono_ms)
    assert cl.observe(state, late, POLICY).evidence == evidence


def test_delayed_report__is_not_ahead() -> None:
    obs = _live(20, 0.0)
    state, _ = _run(obs)
    late = _obs(obs[-1], received_us=obs[-1].received_us + 3_600_000_000)  # an hour in transit
    assert cl.observe(state, late, POLICY).evidence == ()


def test_backlog_burst_at_boot_start__no_evidence() -> None:
    # Rebooted offline: ten reports made a minute apart arrive 50 ms apart, then live ones.
    made = _live(40, -8.0, boot=4, mono0=20_000)
    burst = [
        cl.Observation(o.seq, o.boot, o.mono_ms, T0_US + 600_000_000 + 50_000 * k, 5.0)
        for k, o in enumerate(made[:10])
    ]
    assert not any(_run(burst + made[10:])[1])


def test_reboot__restarts_the_clock_model_and_learns_the_crystal() -> None:
    first = _live(300, 15.0)  # 299 min: long enough to learn the crystal's skew
    state, found = _run(first)
    assert state.crystal_skew_ppm is None
    again = _live(300, 15.0, boot=4, seq0=500, mono0=30_000, t0_us=T0_US + 10**10)
    state, found = _run(again, state)
    assert not any(found)
    assert state.crystal_skew_ppm == pytest.approx(15.0, abs=0.1)
    assert state.boot == 4


def test_skew_mismatch__a_boot_whose_crystal_differs() -> None:
    state, _ = _run(_live(300, 15.0))
    other = _live(300, 40.0, boot=4, seq0=500, mono0=30_000, t0_us=T0_US + 10**10)
    state, found = _run(other, state)
    assert E.SKEW_MISMATCH in found[-1]
    first = next(k for k, ev in enumerate(found) if ev)
    assert first * 60 >= POLICY.skew_min_span_s  # not before the boot spans skew_min_span_s


@pytest.mark.parametrize(
    ("distances", "flagged"),
    [
        ([5, 40, 5, 5, 5, 40, 5], [False] * 7),  # outliers 4 apart: genuine odd sessions
        ([5, 40, 40, 5], [False, False, True, True]),  # 2 of the last 4
        ([40, 5, 40, 5, 5, 5], [False, False, True, True, False, False]),  # interleaved
        ([26, 26, 26], [False, True, True]),
        ([25, 25, 25], [False, False, False]),  # at the limit is not above it
    ],
)
def test_fingerprint_mismatch__two_of_four(distances: list[float], flagged: list[bool]) -> None:
    obs = _live(len(distances), 0.0)
    obs = [_obs(o, seq=o.seq, mono_ms=o.mono_ms, received_us=o.received_us, distance=d)
           for o, d in zip(obs, distances, strict=True)]  # fmt: skip
    _, found = _run(obs)
    assert [E.FINGERPRINT_MISMATCH in f for f in found] == flagged


def test_fingerprint_replay__a_digest_seen_before() -> None:
    obs = _live(70, 0.0)
    digests = [bytes([k]) * 16 for k in range(70)]
    obs = [_obs(o, seq=o.seq, mono_ms=o.mono_ms, received_us=o.received_us,
                fingerprint_digest=d) for o, d in zip(obs, digests, strict=True)]  # fmt: skip
    state, found = _run(obs)
    assert not any(found)
    assert len(state.digests) == POLICY.replay_memory
    replayed = _obs(obs[-1], fingerprint_digest=digests[-5])
    assert cl.observe(state, replayed, POLICY).evidence == (E.FINGERPRINT_REPLAY,)
    forgotten = _obs(obs[-1], fingerprint_digest=digests[0])  # older than the memory
    assert cl.observe(state, forgotten, POLICY).evidence == ()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"seq": -1, "boot": 0, "mono_ms": 0, "received_us": 0},
        {"seq": 1, "boot": 0, "mono_ms": 1.5, "received_us": 0},
        {"seq": 1, "boot": 0, "mono_ms": 0, "received_us": 0, "distance": float("nan")},
        {"seq": 1, "boot": 0, "mono_ms": 0, "received_us": 0, "distance": -1.0},
    ],
)
def test_observation__invalid(kwargs: dict[str, object]) -> None:
    with pytest.raises(cl.CloneError):
        cl.Observation(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fp_hits": 0},
        {"fp_hits": 5},  # more than fp_window
        {"fp_limit": 0.0},
        {"ahead_allow_ms": float("inf")},
        {"seq_memory": 1.5},
    ],
)
def test_policy__invalid(kwargs: dict[str, float]) -> None:
    with pytest.raises(cl.CloneError, match=next(iter(kwargs))):
        cl.ClonePolicy(**kwargs)  # type: ignore[arg-type]


def test_evaluate__quick_catches_every_clone_without_false_alarms() -> None:
    result = sig_clone.evaluate(seed=2, quick=True)
    assert result["false_alarms"] == 0
    assert result["max_reports_to_detect"] is not None
    assert result["max_reports_to_detect"] <= 10
    for scenario in sig_clone.SCENARIOS:
        assert result["per_scenario"][scenario]["undetected"] == 0, scenario

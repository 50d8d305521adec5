"""One decision from all signals (issue 13 item 11): the per-device signals' memory, their
evidence and weights, the verdict that combines them with the server score, and the device's
re-centred thresholds (item 1), through the pure ingest judge with the real model."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from agent.simulator.cohort import LabelledSession, device_sessions
from cloud_bridge.config import ConfigError, load
from cloud_bridge.device_state import DeviceState
from cloud_bridge.judge import Category, judge
from cloud_bridge.risk import signals
from cloud_bridge.risk.calibration import KindThresholds
from cloud_bridge.risk.policy import SignalPolicy, SignalPolicyError
from cloud_bridge.risk.travel import Fix
from cloud_bridge.risk.verdict import Evidence, Level, Scored, Thresholds
from cloud_bridge.risk.verdict import judge as verdict
from protocol import messages as m
from tests.bridge.test_judge import DEVICE, RULES, STATE, restock, signed
from tests.risk.test_judge_score import q_of

POLICY = SignalPolicy()
PHONE = RULES.thresholds.kinds["phone"]
KT = KindThresholds(-23, -4, -81)


def fingerprinted(seq: int, s: LabelledSession, mono_ms: int, boot: int = 3) -> m.Report:
    from tests.risk.test_judge_score import report

    return replace(report(seq, s), mono_ms=mono_ms, boot=boot)


@pytest.fixture(scope="module")
def genuine() -> list[LabelledSession]:
    return [
        s
        for s in device_sessions(1_900_001, "phone", genuine=12, per_impostor=0)
        if not s.impostor and q_of(s) < PHONE.step_up_q
    ]


def enrolled(s: LabelledSession) -> DeviceState:
    return replace(STATE, kind="phone", baseline=s.baseline.to_wire(), risk_q=None)


# ---- the verdict: points and levels -------------------------------------------------------


@pytest.mark.parametrize(
    ("codes", "points", "level"),
    [
        ((), 0, Level.ALLOW),
        (("fingerprint_drift",), 0, Level.ALLOW),  # weight 0: listed, changes nothing
        (("skew_mismatch",), 30, Level.STEP_UP),
        (("clock_ahead",), 60, Level.HOLD),
        (("skew_mismatch", "clock_ahead"), 90, Level.HOLD),
        (("mono_regression",), 100, Level.FREEZE),
    ],
)
def test_verdict__points_reach_levels_and_every_code_is_a_reason(
    codes: tuple[str, ...], points: int, level: Level
) -> None:
    t = Thresholds({"phone": KT})
    v = verdict("phone", Scored(-90), 0, frozenset(), t, Evidence(codes, points))
    assert v.level is level
    assert v.reasons == codes
    assert v.clone is (level is Level.FREEZE)


def test_verdict__a_high_score_and_signals_both_show_and_the_higher_level_wins() -> None:
    t = Thresholds({"phone": KT})
    v = verdict("phone", Scored(-10), 0, frozenset(), t, Evidence(("skew_mismatch",), 30))
    assert v.level is Level.STEP_UP and v.reasons == ("score_step_up", "skew_mismatch")
    v = verdict("phone", Scored(-10), 0, frozenset(), t, Evidence(("clock_ahead",), 60))
    assert v.level is Level.HOLD and v.reasons == ("score_step_up", "clock_ahead")


def test_verdict__a_re_centred_device_is_judged_on_its_shifted_thresholds() -> None:
    t = Thresholds({"phone": KT})
    assert verdict("phone", Scored(-20), 0, frozenset(), t).level is Level.STEP_UP
    v = verdict("phone", Scored(-20), 0, frozenset(), t, Evidence(shift_q=10))
    assert v.level is Level.ALLOW  # -20 < -23 + 10
    v = verdict("phone", Scored(6), 0, frozenset(), t, Evidence(shift_q=10))
    assert v.level is Level.HOLD  # -4 + 10 = 6: the hold threshold moved by the same amount


# ---- re-centring: bounded, and not walkable by an impostor --------------------------------


def test_centre__a_device_scoring_high_moves_its_thresholds_up_by_at_most_the_bound() -> None:
    c = signals.Centre()
    for _ in range(POLICY.centre_min_reports - 1):
        c = c.update(-50, POLICY)
    assert c.shift_q(KT, POLICY) == 0  # not before centre_min_reports
    c = c.update(-50, POLICY)
    assert c.q16 // signals.Q16 == -50
    # median -50 against the kind's -81: 31 q above, bounded at 24
    assert c.shift_q(KT, POLICY) == POLICY.centre_max_shift_q == 24
    assert c.shift_q(KindThresholds(-23, -4, -60), POLICY) == 10
    assert c.shift_q(KindThresholds(-23, -4, -50), POLICY) == 0  # below its kind: never down
    assert c.shift_q(KindThresholds(-23, -4), POLICY) == 0  # kind without a measured centre


def test_settle__scores_at_or_above_the_step_up_threshold_never_move_the_median() -> None:
    mem = signals.Memory(centre=signals.Centre(-80 * signals.Q16, 50))
    for q in range(-23, 40):  # an impostor's sessions, all flagged
        mem = signals.settle(mem, q, True, -23, POLICY)
    assert mem.centre == signals.Centre(-80 * signals.Q16, 50)
    assert signals.settle(mem, -30, False, -23, POLICY) == mem  # a trigger's carried score
    assert signals.settle(mem, None, True, -23, POLICY) == mem
    moved = signals.settle(mem, -30, True, -23, POLICY)
    assert moved.centre.q16 == -80 * signals.Q16 + POLICY.centre_step_q16
    assert moved.centre.reports == 51


def test_centre__an_impostor_straddling_the_threshold_cannot_walk_past_the_bound() -> None:
    mem = signals.Memory()
    for i in range(5000):
        q = -24 + (i % 3)  # -24, -23, -22 ...: only -24 is allowed, every time
        shift = mem.centre.shift_q(KT, POLICY)
        mem = signals.settle(mem, q, True, KT.shifted(shift).step_up_q, POLICY)
        assert shift <= POLICY.centre_max_shift_q
    assert mem.centre.shift_q(KT, POLICY) == POLICY.centre_max_shift_q


# ---- observe: the per-device signals -------------------------------------------------------


def test_observe__a_repeated_fingerprint_is_a_replay_worth_a_freeze(
    genuine: list[LabelledSession],
) -> None:
    s = genuine[0]
    base = s.baseline.to_wire()
    scales = RULES.scales
    mem = signals.Memory()
    fp = s.current.to_wire()
    first = signals.observe(mem, signals.Seen(1, 3, 1000, 10_000, fp), base, scales, POLICY)
    assert first.evidence == () and first.points == 0
    again = signals.observe(
        first.memory, signals.Seen(2, 3, 2000, 11_000, fp), base, scales, POLICY
    )
    assert again.evidence == ("fingerprint_replay",) and again.points == 100


def test_observe__mono_ms_going_backwards_in_one_boot() -> None:
    mem = signals.Memory()
    for seq, mono, recv in ((1, 1000, 10_000), (2, 2000, 11_000)):
        mem = signals.observe(mem, signals.Seen(seq, 3, mono, recv), {}, None, POLICY).memory
    back = signals.observe(mem, signals.Seen(3, 3, 1500, 12_000), {}, None, POLICY)
    assert back.evidence == ("mono_regression",) and back.points == POLICY.mono_regression


def test_observe__a_location_is_no_device_evidence_travel_is_per_user() -> None:
    shanghai = Fix(0, 312_304_000, 1_214_737_000, 10, "gps")
    paris = Fix(3_600_000, 488_566_000, 23_522_000, 10, "gps")  # an hour later
    a = signals.observe(
        signals.Memory(), signals.Seen(1, 3, 0, 1, location=shanghai), {}, None, POLICY
    )
    b = signals.observe(
        a.memory, signals.Seen(2, 3, 3_600_000, 3_600_001, location=paris), {}, None, POLICY
    )
    assert b.evidence == ()  # tests/risk/test_user_signals.py judges it, across devices


def test_memory__round_trips_through_its_stored_text(genuine: list[LabelledSession]) -> None:
    s = genuine[0]
    mem = signals.Memory()
    for seq, g in enumerate(genuine[:4], 1):
        seen = signals.Seen(
            seq, 3, seq * 1000, 10_000 + seq * 1001, g.current.to_wire(),
            Fix(seq, 312_304_000, 1_214_737_000, 10, "gps", DEVICE),
        )  # fmt: skip
        mem = signals.observe(mem, seen, s.baseline.to_wire(), RULES.scales, POLICY).memory
        mem = signals.settle(mem, -70, True, -23, POLICY)
    assert signals.from_json(signals.to_json(mem)) == mem
    assert mem.clone.digests and mem.drift.reports == 4
    assert signals.from_json("") == signals.Memory()
    assert signals.from_json("{not json") == signals.Memory()  # relearnt, never a crash


# ---- the ingest judge: evidence in the decision and the risk note --------------------------


def test_judge__a_replayed_fingerprint_freezes_and_says_why(
    genuine: list[LabelledSession],
) -> None:
    s = genuine[0]
    state = enrolled(s)
    one = judge(state, signed(fingerprinted(1, s, 1000)), "active", None, RULES)
    assert one.plan is not None and one.plan.verdict.level is Level.ALLOW and not one.notes
    assert one.state is not None and one.state.risk_memory.clone.digests
    two = judge(one.state, signed(fingerprinted(2, s, 2000)), "active", None, RULES)
    assert two.plan is not None and two.plan.verdict.level is Level.FREEZE
    assert two.plan.verdict.reasons == ("fingerprint_replay",)
    assert two.plan.freeze is not None and two.plan.freeze.reason == "clone"
    assert [(n.category, n.reason) for n in two.notes] == [(Category.ALERT, "fingerprint_replay")]
    assert "fingerprint_replay" in two.notes[0].detail


def test_judge__a_report_stamped_before_the_last_one_freezes_and_a_trigger_may_be(
    genuine: list[LabelledSession],
) -> None:
    s, other = genuine[0], replace(genuine[1], baseline=genuine[0].baseline)
    one = judge(enrolled(s), signed(fingerprinted(1, s, 5000)), "active", None, RULES)
    assert one.state is not None
    # A trigger made earlier but sent first (the agent's outbox puts triggers ahead): fine.
    t = judge(one.state, signed(replace(restock(2), boot=3, mono_ms=4000)), "active", None, RULES)
    assert t.plan is not None and t.plan.verdict.level is Level.ALLOW
    assert t.plan.command is not None and t.state is not None
    # A report stamped before the previous report in the same boot: a second board.
    two = judge(t.state, signed(fingerprinted(3, other, 4500)), "active", None, RULES)
    assert two.plan is not None and two.plan.verdict.level is Level.FREEZE
    assert two.plan.verdict.reasons == ("mono_regression",)


def test_judge__genuine_reports_with_fresh_fingerprints_raise_nothing(
    genuine: list[LabelledSession],
) -> None:
    state = enrolled(genuine[0])
    for seq, s in enumerate(genuine, 1):
        same_board = replace(s, baseline=genuine[0].baseline)
        j = judge(
            state, signed(fingerprinted(seq, same_board, seq * 60_000)), "active", None, RULES
        )
        assert j.plan is not None
        assert j.plan.verdict.reasons == (), (seq, j.plan.verdict)
        assert j.state is not None
        state = j.state
    assert state.risk_memory.centre.reports == len(genuine)


# ---- the policy: one declaration, errors that name the key ---------------------------------


def test_policy__bridge_toml_sets_and_checks_every_knob(tmp_path: Path) -> None:
    path = tmp_path / "bridge.toml"
    path.write_text("[risk_signals]\nclock_ahead = 30\ncentre_max_shift_q = 8\n")
    cfg = load(path, tmp_path)
    assert cfg.risk_signals.clock_ahead == 30 and cfg.risk_signals.centre_max_shift_q == 8
    assert cfg.risk_signals.mono_regression == SignalPolicy().mono_regression
    path.write_text("[risk_signals]\nclock_ahead = 2.5\n")
    with pytest.raises(ConfigError, match=r"\[risk_signals\] clock_ahead"):
        load(path, tmp_path)
    path.write_text("[risk_signals]\nhold_points = 20\n")
    with pytest.raises(ConfigError, match="must rise; for example"):
        load(path, tmp_path)
    path.write_text("[risk_signals]\nwarp = 1\n")
    with pytest.raises(ConfigError, match="warp"):
        load(path, tmp_path)
    with pytest.raises(SignalPolicyError, match="fp_hits"):
        SignalPolicy(fp_hits=5, fp_window=4)

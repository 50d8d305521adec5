"""The per-user risk signals (issue 13 items 6 and 7): impossible travel judged against the
user's last located event from any of their devices, and the plausibility of the user's trigger
sequence (their own Markov model, a CUSUM of its surprise), pure and through the ingest judge.
The travel figures are great-circle distances worked out by hand: 1 degree of latitude is
111.2 km on the mean Earth radius."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cloud_bridge.judge import judge
from cloud_bridge.risk import sequence as sq
from cloud_bridge.risk import user_signals as us
from cloud_bridge.risk.policy import SignalPolicy
from cloud_bridge.risk.travel import Fix
from cloud_bridge.risk.user_signals import UserMemory
from cloud_bridge.risk.verdict import Level
from protocol import messages as m
from tests.bridge.test_judge import RULES, STATE, restock, signed

POLICY = SignalPolicy()
E7 = 10_000_000
LAT, LON = 31 * E7, 121 * E7  # near Shanghai
MIN = 60_000
KM_PER_DEGREE = 111.2  # of latitude, on the mean Earth radius


def north(km: float) -> int:
    """The latitude (x 10^7) `km` north of LAT."""
    return LAT + round(km / KM_PER_DEGREE * E7)


def test_two_devices_of_one_user_1000_km_apart_in_10_minutes_is_impossible_travel() -> None:
    phone = Fix(0, LAT, LON, 10, "gps", "u1-phone")
    watch = Fix(10 * MIN, north(1000), LON, 10, "gps", "u1-watch")  # 6,000 km/h
    first = us.observe(UserMemory(), phone, None, POLICY)
    assert first.evidence == () and first.memory.travel.last == phone  # nothing to compare yet
    second = us.observe(first.memory, watch, None, POLICY)
    assert second.evidence == ("impossible_travel",)
    assert second.points == POLICY.impossible_travel == 60  # a hold on its own
    assert second.memory.travel.last == watch  # the later fix, whichever device sent it


def test_a_flight_over_the_same_distance_is_no_alarm() -> None:
    phone = Fix(0, LAT, LON, 10, "gps", "u1-phone")
    landed = Fix(150 * MIN, north(1000), LON, 10, "gps", "u1-watch")  # 400 km/h
    step = us.observe(us.observe(UserMemory(), phone, None, POLICY).memory, landed, None, POLICY)
    assert step.evidence == ()


@pytest.mark.parametrize("off_km", [25, 100, 250, 500])
@pytest.mark.parametrize("claimed_m", [5_000, 50_000, 500_000])
def test_geoip_noise_across_devices_is_no_alarm(off_km: int, claimed_m: int) -> None:
    # The phone has GPS; the watch's gateway is placed by GeoIP 25-500 km off, whatever radius
    # the lookup claims (the policy's ip floor is 500 km), 10 minutes later and back again.
    phone = Fix(0, LAT, LON, 10, "gps", "u1-phone")
    geoip = Fix(10 * MIN, north(off_km), LON, claimed_m, "ip", "u1-watch")
    back = Fix(20 * MIN, LAT, LON, 10, "gps", "u1-phone")
    mem = UserMemory()
    for fix in (phone, geoip, back):
        step = us.observe(mem, fix, None, POLICY)
        assert step.evidence == (), fix
        mem = step.memory


def test_a_cell_fix_is_judged_with_its_floor() -> None:
    # 30 km in one minute: 1,800 km/h between the points, but a cell fix is only good to 5 km
    # (floor) and GPS to 10 m: at least 25 km in a minute is still 1,500 km/h: impossible.
    phone = Fix(0, LAT, LON, 10, "gps", "u1-phone")
    cell = Fix(MIN, north(30), LON, 1_000, "cell", "u1-ev")
    step = us.observe(us.observe(UserMemory(), phone, None, POLICY).memory, cell, None, POLICY)
    assert step.evidence == ("impossible_travel",)
    near = Fix(MIN, north(9), LON, 1_000, "cell", "u1-ev")  # 9 km - 5 km: 240 km/h
    step = us.observe(us.observe(UserMemory(), phone, None, POLICY).memory, near, None, POLICY)
    assert step.evidence == ()


# ---- the trigger sequence ----------------------------------------------------------------------


def habits(n: int) -> list[sq.Event]:
    """A user's routine: the fridge restocks about 120 yuan in the morning, the watch sends
    health streaks in the evening."""
    out = []
    for i in range(n):
        if i % 3 == 2:
            out.append(sq.Event("health_streak", 0, 20 + i % 2, "u1-watch"))
        else:
            out.append(sq.Event("restock", 11_000 + 500 * (i % 5), 8 + i % 3, "u1-fridge"))
    return out


def learnt(events: list[sq.Event]) -> UserMemory:
    mem = UserMemory()
    for e in events:
        step = us.observe(mem, None, e, POLICY)
        assert step.evidence == ()
        mem = us.learn(step.memory, e, POLICY)
    return mem


def test_no_sequence_judgement_before_seq_min_events() -> None:
    mem = learnt(habits(POLICY.seq_min_events - 1))
    thief = sq.Event("emergency", 2_000_000, 3, "u1-phone")
    assert us.observe(mem, None, thief, POLICY).evidence == ()


def test_a_thiefs_triggers_are_implausible_the_users_own_are_not() -> None:
    mem = learnt(habits(30))
    assert len(mem.history) == 30
    for e in habits(60)[30:]:  # the routine goes on: never flagged
        step = us.observe(mem, None, e, POLICY)
        assert step.evidence == (), e
        mem = us.learn(step.memory, e, POLICY)
    assert len(mem.history) == POLICY.seq_window  # the latest 60 only
    # A thief with the phone the user never raised a trigger from: a large emergency at 3 am.
    thief = sq.Event("emergency", 2_000_000, 3, "u1-phone")
    step = us.observe(mem, None, thief, POLICY)
    assert step.evidence == ("implausible_sequence",)
    assert step.points == POLICY.implausible_sequence == 30  # a step-up on its own


def test_a_confirmed_trigger_is_learnt_and_clears_the_evidence() -> None:
    mem = learnt(habits(30))
    odd = sq.Event("restock", 90_000, 2, "u1-fridge")  # the user restocks big, at night
    step = us.observe(mem, None, odd, POLICY)
    assert step.evidence == ("implausible_sequence",)
    assert step.memory.history == mem.history  # observing learns nothing
    declined = step.memory  # a thief's: neither learnt nor cleared
    again = us.observe(declined, None, odd, POLICY)
    assert again.evidence == ("implausible_sequence",)
    owner = us.confirmed(step.memory, odd, POLICY)
    assert owner.history[-1] == odd and owner.sequence.evidence == 0.0
    typical = habits(31)[30]
    assert us.observe(owner, None, typical, POLICY).evidence == ()


def test_user_memory_round_trips_through_its_stored_text() -> None:
    mem = learnt(habits(25))
    mem = us.observe(mem, Fix(5, LAT, LON, 10, "gps", "u1-phone"), None, POLICY).memory
    assert mem.sequence.prev_kind == "restock" and mem.travel.last is not None
    assert us.from_json(us.to_json(mem)) == mem
    assert us.from_json("") == UserMemory()
    assert us.from_json('{"v":1,"fix":[1,2]}') == UserMemory()  # relearnt, never a crash


# ---- through the ingest judge ------------------------------------------------------------------

NINE_AM = 1_800_003_600_000  # 2027-01-15 09:00 UTC
THREE_AM = NINE_AM - 6 * 3_600_000


def test_judge__learns_allowed_triggers_and_steps_up_an_implausible_one() -> None:
    user = UserMemory()
    for seq in range(1, 26):  # the fridge's routine: allowed and learnt
        msg = replace(restock(seq, cost_fen=12_300), ts_ms=NINE_AM + seq * 86_400_000)
        j = judge(STATE, signed(msg), "active", None, RULES, user)
        assert j.plan is not None and j.plan.verdict.level is Level.ALLOW
        assert j.user_memory is not None
        user = j.user_memory
    assert len(user.history) == 25 and user.history[-1] == sq.Event("restock", 12_300, 9, "dev-1")
    greedy = replace(restock(26, cost_fen=5_000_000), ts_ms=THREE_AM)
    j = judge(STATE, signed(greedy), "active", None, RULES, user)
    assert j.plan is not None and j.plan.verdict.level is Level.STEP_UP
    assert "implausible_sequence" in j.plan.verdict.reasons
    assert j.user_memory is not None and j.user_memory.history == user.history  # not learnt
    assert j.notes and j.notes[0].reason == "implausible_sequence"  # on the risk topic


def test_judge__a_located_trigger_is_judged_against_the_users_other_device() -> None:
    far = m.Location(lat_e7=north(1000), lon_e7=LON, accuracy_m=10, source="gps")
    user = UserMemory(us.travel.State(Fix(NINE_AM - 10 * MIN, LAT, LON, 10, "gps", "u1-phone")))
    msg = replace(restock(1), ts_ms=NINE_AM, location=far)
    j = judge(STATE, signed(msg), "active", None, RULES, user)
    assert j.plan is not None and j.plan.verdict.level is Level.HOLD
    assert j.plan.verdict.reasons == ("impossible_travel",)
    assert j.plan.commands == ()  # the restock's hold is not placed
    assert j.user_memory is not None and j.user_memory.travel.last is not None
    assert j.user_memory.travel.last.device == "dev-1"
    # Without the user's memory (not read for this batch) the same trigger is allowed.
    alone = judge(STATE, signed(msg), "active", None, RULES)
    assert alone.plan is not None and alone.plan.verdict.level is Level.ALLOW
    assert alone.user_memory is None

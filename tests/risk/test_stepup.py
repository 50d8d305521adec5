"""The pending step-up as a function of events: a table of single transitions, and any sequence
of replies and ticks against a plain model (at most one run, never after the deadline, only
for the primary device with the challenge it was sent and a trusted session)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cloud_bridge.pool.commands import Emergency
from cloud_bridge.pool.policy import Emergencies
from cloud_bridge.risk.stepup import (
    EMERGENCY_MARGIN_MS,
    Effect,
    Ignored,
    PendingStepUp,
    Reply,
    Status,
    deadline_ms,
    on_reply,
    on_tick,
    open_step_up,
)

POLICY = Emergencies()
CHALLENGE = bytes(range(16))
OTHER = bytes(16)
T0 = 1_000_000


def pending(emergency: Emergency | None = Emergency.ILLNESS) -> PendingStepUp:
    return open_step_up(
        "phone-1:7", "u1", "phone-1", CHALLENGE, T0, emergency, POLICY, ttl_ms=60_000
    )


def test_deadlines__an_emergency_leaves_its_draw_time_within_the_tier() -> None:
    for kind, target_ms in (
        (Emergency.ILLNESS, 15_000),
        (Emergency.DISASTER, 30_000),
        (Emergency.EDUCATION, 45_000),
    ):
        assert deadline_ms(T0, kind, POLICY, 60_000) == T0 + target_ms - EMERGENCY_MARGIN_MS
    assert deadline_ms(T0, None, POLICY, 60_000) == T0 + 60_000


def test_single_transitions() -> None:
    p = pending()
    ok = Reply("phone-1", CHALLENGE, confirmed=True, fresh_ok=True)
    cases = [
        (on_reply(p, ok, T0 + 500), Status.CONFIRMED, Effect.RUN, None),
        (on_reply(p, Reply("watch-1", CHALLENGE, True, True), T0 + 1), Status.PENDING,
         Effect.NONE, Ignored.WRONG_DEVICE),
        (on_reply(p, Reply("phone-1", OTHER, True, True), T0 + 1), Status.PENDING,
         Effect.NONE, Ignored.WRONG_CHALLENGE),
        (on_reply(p, Reply("phone-1", CHALLENGE, True, False), T0 + 1), Status.PENDING,
         Effect.NONE, Ignored.UNTRUSTED_SESSION),
        (on_reply(p, Reply("phone-1", CHALLENGE, False, True), T0 + 1), Status.DECLINED,
         Effect.DROP, None),
        (on_reply(p, ok, p.deadline_ms), Status.EXPIRED, Effect.DROP, None),
        (on_tick(p, p.deadline_ms - 1), Status.PENDING, Effect.NONE, None),
        (on_tick(p, p.deadline_ms), Status.EXPIRED, Effect.DROP, None),
    ]  # fmt: skip
    for step, status, effect, ignored in cases:
        assert (step.state.status, step.effect, step.ignored) == (status, effect, ignored)
        if effect is Effect.NONE:
            assert step.state is p  # an ignored event changes nothing


def test_a_settled_step_up_ignores_everything_after() -> None:
    done = on_reply(pending(), Reply("phone-1", CHALLENGE, True, True), T0 + 1).state
    again = on_reply(done, Reply("phone-1", CHALLENGE, True, True), T0 + 2)
    assert (again.state, again.effect, again.ignored) == (done, Effect.NONE, Ignored.NOT_PENDING)
    assert on_tick(done, done.deadline_ms + 1).effect is Effect.NONE


events = st.lists(
    st.one_of(
        st.tuples(st.just("tick"), st.integers(0, 20_000)),
        st.tuples(
            st.just("reply"),
            st.integers(0, 20_000),
            st.sampled_from(["phone-1", "watch-1"]),
            st.sampled_from([CHALLENGE, OTHER]),
            st.booleans(),
            st.booleans(),
        ),
    ),
    max_size=12,
)


@given(events)
def test_any_sequence_runs_at_most_once_and_only_when_allowed(seq: list[tuple]) -> None:  # type: ignore[type-arg]
    p = pending()
    runs = drops = 0
    settled = False  # the plain model: once confirmed, declined or expired, nothing changes
    now = T0
    for ev in seq:
        now += ev[1]
        if ev[0] == "tick":
            step = on_tick(p, now)
            expect_drop = not settled and now >= p.deadline_ms
            assert (step.effect is Effect.DROP) == expect_drop
        else:
            _, _, device, challenge, confirmed, fresh = ev
            step = on_reply(p, Reply(device, challenge, confirmed, fresh), now)
            allowed = (
                not settled and now < p.deadline_ms and device == "phone-1"
                and challenge == CHALLENGE and confirmed and fresh
            )  # fmt: skip
            assert (step.effect is Effect.RUN) == allowed
        runs += step.effect is Effect.RUN
        drops += step.effect is Effect.DROP
        settled = settled or step.effect is not Effect.NONE
        p = step.state
    assert runs + drops <= 1
    assert (p.status is Status.PENDING) == (runs + drops == 0)

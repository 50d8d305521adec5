"""cloud_bridge.guard: what the bridge answers to what it sees on its retained topics."""

from __future__ import annotations

import pytest

from cloud_bridge import guard
from protocol import messages as m

ME = "bridge-1"
SESSION = guard.StatePair(boot=3, announce_seq=2_001, will_seq=2_002)


def state(sender: str, boot: int, seq: int, online: bool) -> m.BridgeState:
    return m.BridgeState(sender=sender, seq=seq, boot=boot, ts_ms=1, online=online)


@pytest.mark.parametrize(
    ("seen", "answer"),
    [
        (None, True),  # empty, unsigned or foreign-signed
        (state(ME, 3, 2_001, True), False),  # our own announcement coming back
        (state(ME, 3, 1_002, False), True),  # our will of an earlier session, replayed
        (state(ME, 2, 9_999, False), True),  # our offline of an earlier boot, replayed
        (state(ME, 3, 2_002, False), True),  # this session's will, replayed while we run
        (state(ME, 3, 1_001, True), True),  # an earlier announcement of ours
        (state(ME, 4, 1, True), False),  # a newer process with our id: never answered
        (state("bridge-2", 1, 5, False), True),  # another instance's will
        (state("bridge-2", 1, 5, True), False),  # another instance's announcement: no loop
    ],
)
def test_what_the_bridge_answers_on_its_state_topic(
    seen: m.BridgeState | None, answer: bool
) -> None:
    assert guard.must_reannounce(seen, ME, SESSION) is answer


@pytest.mark.parametrize(("announce", "will"), [(5, 5), (6, 5), (0, 1)])
def test_a_will_must_be_numbered_after_its_announcement(announce: int, will: int) -> None:
    with pytest.raises(ValueError, match="after the announcement"):
        guard.StatePair(boot=1, announce_seq=announce, will_seq=will)


@pytest.mark.parametrize(
    ("seen", "current", "answer"),
    [
        (None, 7, True),  # empty or foreign: put the current one back
        (6, 7, True),  # an older, validly signed state (a replay)
        (7, 7, False),  # the current one
        (8, 7, False),  # newer than committed here: another bridge's, left alone
        (None, None, False),  # no such pool: nothing to put there
        (3, None, False),
    ],
)
def test_what_the_bridge_answers_on_a_pool_topic(
    seen: int | None, current: int | None, answer: bool
) -> None:
    assert guard.must_republish_pool(seen, current) is answer


def test_an_echo_is_recognised_once_and_in_order() -> None:
    echoes = guard.Echoes(max_topics=10)
    echoes.sent("t", b"v5")
    echoes.sent("t", b"v6")
    assert not echoes.is_echo("t", b"v4")  # never published by us: checked
    assert echoes.is_echo("t", b"v5")
    assert not echoes.is_echo("t", b"v5")  # the same bytes again: a replay, checked
    assert echoes.is_echo("t", b"v6")
    assert not echoes.is_echo("other", b"v6")


def test_an_echo_forgets_the_ones_published_before_it() -> None:
    echoes = guard.Echoes(max_topics=10)
    for v in (b"v1", b"v2", b"v3"):
        echoes.sent("t", v)
    assert echoes.is_echo("t", b"v3")  # v1 and v2 never came back (a reconnect)
    assert not echoes.is_echo("t", b"v1")  # so a late copy of v1 is checked


def test_echoes_stay_bounded() -> None:
    echoes = guard.Echoes(max_topics=2)
    for i in range(guard.ECHO_DEPTH + 3):
        echoes.sent("a", b"%d" % i)
    assert not echoes.is_echo("a", b"0")  # beyond the depth: forgotten, so checked
    assert echoes.is_echo("a", b"%d" % (guard.ECHO_DEPTH + 2))
    echoes.sent("b", b"x")
    echoes.sent("c", b"y")
    echoes.sent("d", b"z")  # three topics for two places: the oldest goes
    assert not echoes.is_echo("b", b"x")
    assert echoes.is_echo("d", b"z")
    with pytest.raises(ValueError):
        guard.Echoes(max_topics=0)

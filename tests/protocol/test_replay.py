from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import ProtocolError, Reason
from protocol.replay import WINDOW, ReplayWindow


class Reference:
    """The plain model: every accepted number, and the highest."""

    def __init__(self) -> None:
        self.seen: set[int] = set()

    @property
    def hi(self) -> int:
        return max(self.seen, default=0)

    def verdict(self, seq: int) -> Reason | None:
        if seq in self.seen:
            return Reason.REPLAY if seq > self.hi - WINDOW else Reason.STALE
        if seq <= self.hi - WINDOW or seq < 1:
            return Reason.STALE
        return None

    def contiguous(self) -> int:
        n = max(0, self.hi - WINDOW)
        while n + 1 in self.seen:
            n += 1
        return n


sequences = st.lists(st.integers(min_value=1, max_value=400), max_size=300)


@given(sequences)
def test_window__matches_the_reference_model(seqs: list[int]) -> None:
    window, ref = ReplayWindow(), Reference()
    for seq in seqs:
        expected = ref.verdict(seq)
        assert window.verdict(seq) == expected
        if expected is None:
            window = window.accept(seq)
            ref.seen.add(seq)
        else:
            before = window
            with pytest.raises(ProtocolError) as err:
                window.accept(seq)
            assert err.value.reason is expected
            assert window == before
        assert window.hi == ref.hi
        assert window.contiguous == ref.contiguous()
        assert ReplayWindow.from_bytes(window.to_bytes()) == window


@given(st.data())
def test_window__any_order_within_the_window_is_accepted_once(data: st.DataObject) -> None:
    # Chunks of at most WINDOW consecutive numbers, each delivered in any order: no number is
    # ever 64 or more behind the highest, so every one is new exactly once.
    delivered: list[int] = []
    nxt = 1
    while nxt <= 300:
        size = data.draw(st.integers(1, WINDOW))
        delivered += data.draw(st.permutations(list(range(nxt, nxt + size))))
        nxt += size
    window = ReplayWindow()
    for seq in delivered:
        window = window.accept(seq)
    assert window.contiguous == nxt - 1
    for seq in delivered:
        assert window.verdict(seq) in (Reason.REPLAY, Reason.STALE)


def test_window__stale_is_exactly_64_behind() -> None:
    window = ReplayWindow().accept(100)
    assert window.verdict(37) is None  # 100 - 63
    assert window.verdict(36) is Reason.STALE  # 100 - 64
    assert window.verdict(0) is Reason.STALE
    assert window.verdict(-5) is Reason.STALE
    assert window.verdict(True) is Reason.STALE  # type: ignore[arg-type]
    assert window.contiguous == 36


def test_window__contiguous_waits_for_gaps() -> None:
    window = ReplayWindow()
    for seq in (1, 2, 4, 5):
        window = window.accept(seq)
    assert window.contiguous == 2
    window = window.accept(3)
    assert window.contiguous == 5


@given(sequences, st.integers(1, 500))
def test_window__settle_below_marks_exactly_the_lower_numbers(seqs: list[int], floor: int) -> None:
    window, ref = ReplayWindow(), Reference()
    for seq in seqs:
        if ref.verdict(seq) is None:
            window = window.accept(seq)
            ref.seen.add(seq)
    settled = window.settle_below(floor)
    assert settled.contiguous >= floor - 1
    for seq in range(max(1, floor - 80), floor):
        assert settled.verdict(seq) is not None  # never accepted again
    for seq in range(floor, floor + 70):
        if seq not in ref.seen and seq > settled.hi - WINDOW:
            assert settled.verdict(seq) is None  # the sender may still send these
    assert ReplayWindow.from_bytes(settled.to_bytes()) == settled


def test_window__settle_below_lets_the_ack_pass_a_gap() -> None:
    window = ReplayWindow()
    for seq in (1, 2, 3):
        window = window.accept(seq)
    jumped = window.settle_below(2000).accept(2000)  # the device lost its outbox and resumed
    assert jumped.contiguous == 2000


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00" * 15,
        b"\x00" * 17,
        (0).to_bytes(8, "big") + (1).to_bytes(8, "big"),
        (5).to_bytes(8, "big") + (2).to_bytes(8, "big"),
        (1 << 63).to_bytes(8, "big") + b"\0" * 7 + b"\1",
    ],
)
def test_window__from_bytes_refuses_invalid_state(data: bytes) -> None:
    with pytest.raises(ValueError):
        ReplayWindow.from_bytes(data)

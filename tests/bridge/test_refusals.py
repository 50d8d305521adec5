"""The refusal budget, the byte-bounded inbox and oversize payloads, as values and threads."""

from __future__ import annotations

import queue
import threading

import pytest

from cloud_bridge.inbox import Inbox
from cloud_bridge.ingest import OVERSIZE_KEPT, Inbound
from cloud_bridge.refusals import WINDOW_S, Budget, RefusalBudget
from protocol.cose import MAX_ENVELOPE_BYTES
from protocol.errors import Reason

KEY_A, KEY_B = "dev-a", "dev-b"  # enrolled devices whose keys verified


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def charges(budget: RefusalBudget, signer: str | None, reason: Reason, n: int) -> list[bool]:
    return [budget.charge(signer, reason) for _ in range(n)]


def test_budget__a_verified_key_gets_its_own_budget_whatever_it_claims() -> None:
    budget = RefusalBudget(Budget(per_key=3, per_reason=5), Clock())
    # One key refused for several reasons (a key signing for other devices' topics): one budget.
    assert charges(budget, KEY_A, Reason.TOPIC_MISMATCH, 2) == [True, True]
    assert charges(budget, KEY_A, Reason.SENDER_MISMATCH, 2) == [True, False]
    assert charges(budget, KEY_B, Reason.TOPIC_MISMATCH, 4) == [True, True, True, False]
    # Unverified refusals of the same reason do not draw on the keys' budgets, nor they on it.
    assert charges(budget, None, Reason.TOPIC_MISMATCH, 6) == [True] * 5 + [False]


def test_budget__unverified_refusals_share_one_budget_per_reason() -> None:
    budget = RefusalBudget(Budget(per_key=100, per_reason=2), Clock())
    assert charges(budget, None, Reason.UNKNOWN_DEVICE, 3) == [True, True, False]
    assert charges(budget, None, Reason.BAD_CBOR, 3) == [True, True, False]
    assert budget.sources == 2  # whatever device ids, kids or payloads those carried


def test_budget__starts_again_each_minute_and_forgets_old_sources() -> None:
    clock = Clock()
    budget = RefusalBudget(Budget(per_key=1, per_reason=1), clock)
    for i in range(50):
        budget.charge(bytes([i]) * 8, Reason.STALE)
    assert budget.sources == 50
    assert budget.charge(KEY_A, Reason.STALE) and not budget.charge(KEY_A, Reason.STALE)
    clock.now += WINDOW_S - 0.001
    assert not budget.charge(KEY_A, Reason.STALE)
    clock.now += 0.001
    assert budget.charge(KEY_A, Reason.STALE)
    assert budget.sources == 1


def test_budget__zero_stores_nothing() -> None:
    budget = RefusalBudget(Budget(per_key=0, per_reason=0), Clock())
    assert not budget.charge(KEY_A, Reason.STALE)
    assert not budget.charge(None, Reason.BAD_CBOR)
    with pytest.raises(ValueError, match="negative"):
        Budget(per_key=-1, per_reason=0)


def test_inbound__an_oversize_payload_keeps_only_its_first_bytes() -> None:
    big = memoryview(bytes(range(256)) * 1000)
    item = Inbound.received("cp/v1/f/d/report", big, 5, 6)
    assert (item.oversize, item.payload) == (len(big), bytes(big[:OVERSIZE_KEPT]))
    assert item.size == len("cp/v1/f/d/report") + OVERSIZE_KEPT
    edge = bytes(MAX_ENVELOPE_BYTES)
    assert Inbound.received("t", edge, 5, 6) == Inbound("t", edge, 5, 6, 0)
    assert Inbound.received("t", edge + b"\x00", 5, 6).oversize == MAX_ENVELOPE_BYTES + 1


def test_inbox__bounded_in_bytes_a_full_put_waits_for_a_get() -> None:
    inbox: Inbox[str] = Inbox(max_items=100, max_bytes=1000)
    inbox.put("a", 600)
    inbox.put("b", 400)
    assert (inbox.qsize(), inbox.bytes) == (2, 1000)
    done = threading.Event()

    def producer() -> None:
        inbox.put("c", 1)  # one byte over: must wait
        done.set()

    thread = threading.Thread(target=producer)
    thread.start()
    assert not done.wait(0.2)
    assert inbox.get(timeout=1) == "a"
    assert done.wait(5)
    thread.join()
    assert [inbox.get_nowait(), inbox.get_nowait()] == ["b", "c"]
    assert (inbox.qsize(), inbox.bytes) == (0, 0)
    with pytest.raises(queue.Empty):
        inbox.get(timeout=0.01)


def test_inbox__bounded_in_messages_and_an_empty_inbox_takes_anything() -> None:
    inbox: Inbox[int] = Inbox(max_items=2, max_bytes=10)
    inbox.put(1, 50)  # larger than the byte bound: taken, since the inbox is empty
    blocked = threading.Thread(target=inbox.put, args=(2, 1))
    blocked.start()
    blocked.join(0.2)
    assert blocked.is_alive() and inbox.qsize() == 1
    assert inbox.get() == 1
    blocked.join(5)
    assert not blocked.is_alive()
    inbox.put(3, 1)
    third = threading.Thread(target=inbox.put, args=(4, 1))  # 2 queued: the count bound
    third.start()
    third.join(0.2)
    assert third.is_alive()
    assert inbox.get() == 2
    third.join(5)
    assert [inbox.get(), inbox.get()] == [3, 4]

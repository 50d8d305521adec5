"""One session of the send window, step by step, with the expected effect of every step written
out. Plain asserts and no imports beyond agent.window: test_window.py runs it under CPython
and, when the `micropython` executable is installed, under MicroPython too (the firmware's
interpreter).
"""

from agent.window import IDLE, Plan, SendWindow, Tick


def run() -> int:
    """Run the scenario; returns the number of checks made."""
    checks = 0
    w = SendWindow(64, 8, 10_000, 100)

    # Disconnected: nothing to do.
    assert w.plan() == IDLE
    # A session on an outbox that numbered 1..10 before and applied the ack of 3.
    w.on_connected(1_000, 11, 4, 3)
    assert (w.acked, w.acked_stored, w.numbered_hi, w.sent_hi) == (3, 3, 10, 3)
    # Gated until the bridge says online.
    assert w.plan() == IDLE
    assert w.on_bridge_state("bridge-a", 2, True)
    # Resend what is numbered and unacked, 8 at a time (the PUBACK limit).
    assert w.plan() == Plan(publish_lo=4, publish_hi=10)
    w.sent(10, [(4, 1), (5, 2), (6, 3), (7, 4), (8, 5), (9, 6), (10, 7)])
    assert w.plan() == Plan(number=3 + 64 - 10)  # a whole window beyond the ack of 3
    assert len(w.inflight) == 7
    w.numbered(11, 11)
    assert w.plan() == Plan(publish_lo=11, publish_hi=11)
    w.sent(11, [(11, 8)])
    assert w.plan() == IDLE  # 8 waiting for a PUBACK
    checks += 10
    # PUBACKs free the slots; the window numbers the rest of the 64 beyond the ack of 3.
    for mid in range(1, 9):
        w.on_puback(mid)
    w.on_puback(99)  # an unknown packet id (the birth, say) is harmless
    assert w.plan() == Plan(number=3 + 64 - 11)
    w.numbered(12, 20)  # only 9 were waiting in the outbox
    assert w.plan() == Plan(publish_lo=12, publish_hi=19)
    checks += 2
    # An ack beyond what was numbered is believed only up to what was numbered.
    assert w.on_ack(500, 2_000)
    assert w.acked == 20
    assert not w.on_ack(15, 2_001)  # older acks change nothing
    # The ack is persisted at once (first flush), then at most every 100 ms.
    assert w.tick(2_010) == Tick(persist_ack=20)
    w.persisted(20, 2_010)
    assert w.tick(2_020) == Tick()
    checks += 5
    # Acked messages are never sent again: nothing numbered is left above the ack.
    assert w.plan() == Plan(number=20 + 64 - 20)
    w.numbered(21, 21)
    w.sent(21, [(21, 10)])
    assert w.on_ack(21, 2_050)
    assert w.tick(2_060) == Tick()  # throttled: 50 ms after the last flush
    assert w.tick(2_110) == Tick(persist_ack=21)
    w.persisted(21, 2_110)
    checks += 4
    # A stale bridge state (an earlier boot of the same instance) is ignored; another instance
    # with a lower boot is not stale.
    assert not w.on_bridge_state("bridge-a", 1, False)
    assert w.bridge_online
    assert w.on_bridge_state("bridge-b", 1, False)
    assert w.plan() == IDLE
    assert w.on_bridge_state("bridge-a", 2, True)
    checks += 5
    # No ack for longer than the timeout: resend everything after the last ack.
    w.numbered(22, 25)
    w.sent(25, [(22, 11), (23, 12), (24, 13), (25, 14)])
    assert w.tick(12_050) == Tick()  # exactly the timeout after the last ack
    assert w.tick(12_051) == Tick(timed_out=True)
    assert w.sent_hi == 21
    for mid in range(11, 15):
        w.on_puback(mid)
    assert w.plan() == Plan(publish_lo=22, publish_hi=25)
    w.sent(25, [(22, 15), (23, 16), (24, 17), (25, 18)])
    assert w.retransmitted == 4
    checks += 5
    # A reconnect: the bridge counts as offline again, every unacked message is resent.
    w.on_disconnected()
    assert w.plan() == IDLE
    w.on_connected(20_000, 26, 22, 21)
    assert w.inflight == set()
    assert w.on_bridge_state("bridge-a", 2, True)
    assert w.plan() == Plan(publish_lo=22, publish_hi=25)
    checks += 4
    return checks


if __name__ == "__main__":
    print("window scenario:", run(), "checks passed")

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
    assert w.on_bridge_state("bridge-a", 2, 100, True, 1_000)
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
    # A stale bridge state (an earlier boot of the same instance, or an earlier number of this
    # boot: a replayed offline) is ignored; another instance with a lower boot is not stale.
    assert not w.on_bridge_state("bridge-a", 1, 900, False, 2_120)
    assert not w.on_bridge_state("bridge-a", 2, 99, False, 2_120)
    assert w.bridge_online
    assert w.on_bridge_state("bridge-b", 1, 5, False, 2_120)
    assert w.plan() == IDLE
    assert w.on_bridge_state("bridge-a", 2, 100, True, 2_120)  # the same announcement again
    checks += 6
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
    assert w.on_bridge_state("bridge-a", 2, 101, True, 20_000)
    assert w.plan() == Plan(publish_lo=22, publish_hi=25)
    checks += 4
    # No valid bridge state for the state timeout (the retained one was deleted): one probe
    # beyond the ack, the whole window once an ack moves it, one probe again when acks stop.
    w = SendWindow(64, 8, 10_000, 100, 30_000)
    w.on_connected(0, 11, 1, 0)
    assert w.tick(29_999) == Tick() and w.mode == "gated"
    assert w.plan() == IDLE
    w.tick(30_000)
    assert w.mode == "on_acks"
    assert w.plan() == Plan(publish_lo=1, publish_hi=1)
    w.sent(1, [(1, 1)])
    assert w.plan() == IDLE  # the probe waits for its ack
    w.on_puback(1)
    assert w.on_ack(1, 30_100)
    assert w.plan() == Plan(publish_lo=2, publish_hi=9)
    w.sent(9, [(s, s) for s in range(2, 10)])
    assert w.tick(40_101) == Tick(persist_ack=1, timed_out=True)
    for mid in range(2, 10):
        w.on_puback(mid)
    assert w.plan() == Plan(publish_lo=2, publish_hi=2)  # acks stopped: a probe again
    checks += 9
    # A valid state ends it: offline gates again, online drains the whole window.
    assert w.on_bridge_state("bridge-a", 3, 7, False, 40_200)
    assert (w.mode, w.plan()) == ("gated", IDLE)
    assert w.on_bridge_state("bridge-a", 3, 8, True, 40_300)
    assert w.plan() == Plan(publish_lo=2, publish_hi=9)
    checks += 3
    return checks


if __name__ == "__main__":
    print("window scenario:", run(), "checks passed")

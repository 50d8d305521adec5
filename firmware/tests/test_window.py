"""The send window with the flash outbox in a seeded simulation: loss of publishes and acks,
reconnects, bridge outages and power cuts (state rebuilt from flash). No number is given to two
contents, nothing goes out while the bridge is offline or beyond the window, and every message
is delivered in the end."""

import gc
import random

import sender
from fwtest import scratch
from outbox import Outbox
from storage import FileStorage
from window import SendWindow

HEAPSIZE = "256k"  # the simulation keeps every payload it made
WINDOW = 16


class Bridge:
    """What the bridge stores: seq -> payload; acks the highest contiguous number."""

    def __init__(self):
        self.stored = {}
        self.contiguous = 0

    def receive(self, seq, payload):
        known = self.stored.get(seq)
        assert known is None or known == payload, "seq %d reused for other content" % seq
        self.stored[seq] = payload
        while self.contiguous + 1 in self.stored:
            self.contiguous += 1


def _run(seed):
    random.seed(seed)
    disk = FileStorage(scratch())
    box = Outbox(disk, max_messages=1000, compact_bytes=2048)
    window = SendWindow(WINDOW, 4, ack_timeout_ms=300)
    bridge = Bridge()
    now = 0
    put = []
    online = connected = False
    mid = [0]
    pubacks = []
    state_seq = [0]

    def bridge_says(online):
        # each state the bridge publishes is newer (boot, seq) than the one before
        state_seq[0] += 1
        window.on_bridge_state("bridge-1", 1, state_seq[0], online, now)

    def publish(entry):
        assert connected and online, "published while gated"
        assert entry.seq <= window.acked + WINDOW, "published beyond the window"
        if random.getrandbits(3):  # one publish in eight is lost
            bridge.receive(entry.seq, entry.payload)
        mid[0] += 1
        pubacks.append(mid[0])  # the broker's PUBACK comes in the next step
        return mid[0]

    for step in range(1500):
        if step % 10 == 0:
            gc.collect()  # as the device loop does: the heap stays unfragmented
        now += 10
        r = random.getrandbits(8)
        if step < 1200 and r < 40:
            payload = b"m%d" % len(put)
            box.put(payload)
            put.append(payload)
        elif step < 1200 and r < 44:
            connected = False
            window.on_disconnected()
            pubacks = []
        elif step < 1200 and r < 48:
            online = not online
            if connected:
                bridge_says(online)
        elif step < 1200 and r < 50:  # power cut: only the flash survives
            box = Outbox(disk, max_messages=1000, compact_bytes=2048)
            window = SendWindow(WINDOW, 4, ack_timeout_ms=300)
            connected = False
            pubacks = []
        if step >= 1200 and not online:  # the bridge comes back for good
            online = True
            if connected:
                bridge_says(True)
        if not connected:
            connected = True
            sender.connected(window, box, now)
            bridge_says(online)
        while pubacks:
            window.on_puback(pubacks.pop())
        if random.getrandbits(2):  # acks are lost too
            window.on_ack(bridge.contiguous, now)
        sender.drain(window, box, publish)
        sender.tick(window, box, now)
    return put, bridge, box


def test_every_message_is_delivered_once_numbered_and_numbers_stay_contiguous():
    for seed in (1, 2, 3):
        put, bridge, box = _run(seed)
        assert len(put) > 100
        assert bridge.contiguous == len(bridge.stored), "a gap in the numbers"
        got = sorted(bridge.stored.values())
        assert got == sorted(put), (seed, len(got), len(put))
        assert len(box) == 0 or box.in_flight() == []

"""The flash outbox loses no committed record: truncated at every byte offset of a sample log,
and cut by power failures at random points of random operations."""

import random

import outbox
from fwtest import FaultyStorage, PowerCut, scratch
from outbox import Outbox
from storage import FileStorage

HEAPSIZE = "96k"


class Model:
    """What the outbox must hold: id -> [priority, payload, seq], by the rules, plainly."""

    def __init__(self, max_messages):
        self.max = max_messages
        self.entries = {}
        self.next_id = 1
        self.numbered_hi = 0

    def copy(self):
        m = Model(self.max)
        m.entries = dict((k, list(v)) for k, v in self.entries.items())
        m.next_id = self.next_id
        m.numbered_hi = self.numbered_hi
        return m

    def put(self, payload, priority):
        if len(self.entries) >= self.max:
            reports = [i for i, e in self.entries.items() if e[2] == 0 and e[0] == 0]
            if not reports:
                return None
            del self.entries[min(reports)]
        self.entries[self.next_id] = [priority, payload, 0]
        self.next_id += 1
        return self.next_id - 1

    def next_unsent(self):
        unsent = [(-e[0], i) for i, e in self.entries.items() if e[2] == 0]
        return min(unsent)[1] if unsent else None

    def number(self, id_):
        self.numbered_hi += 1  # contiguous numbers
        self.entries[id_][2] = self.numbered_hi
        return self.numbered_hi

    def ack(self, seq):
        for i in [i for i, e in self.entries.items() if 0 < e[2] <= seq]:
            del self.entries[i]

    def state(self):
        return sorted((i, e[0], e[1], e[2]) for i, e in self.entries.items())


def state(box):
    return [(e.id, e.priority, e.payload, e.seq) for e in box.entries()]


def _step(rng_op, box, model, pending=None):
    """One random operation on both; returns the model after it. `pending[0]` holds that
    model before the box is touched, for a caller whose power is cut during the operation."""
    if pending is None:
        pending = [None]
    op = rng_op % 4
    if op <= 1:
        payload = bytes([rng_op & 0xFF]) * (1 + rng_op % 29)
        priority = 5 if rng_op % 7 == 0 else 0
        expected = model.copy()
        id_ = expected.put(payload, priority)
        pending[0] = expected
        if id_ is None:
            try:
                box.put(payload, priority)
            except outbox.OutboxFull:
                return model
            raise AssertionError("put into a full outbox")
        assert box.put(payload, priority) == id_
        return expected
    if op == 2:
        id_ = model.next_unsent()
        if id_ is None:
            return model
        entry = box.next_unsent()
        assert entry.id == id_
        expected = model.copy()
        seq = expected.number(id_)
        pending[0] = expected
        assert box.number(entry) == seq
        assert box.next_seq() == seq + 1
        return expected
    numbered = sorted(e[2] for e in model.entries.values() if e[2])
    if not numbered:
        return model
    upto = numbered[rng_op % len(numbered)]
    expected = model.copy()
    expected.ack(upto)
    pending[0] = expected
    box.ack(upto)
    return expected


def test_truncation_at_every_byte_offset_loses_no_committed_record():
    disk = FileStorage(scratch())
    box = Outbox(disk, max_messages=5, compact_bytes=1 << 20)
    model = Model(5)
    states = [(0, model.state())]  # (log size after the operation, the state it committed)
    random.seed(5)
    while len(states) < 40:
        model = _step(random.getrandbits(16), box, model)
        assert state(box) == model.state()
        states.append((disk.size(outbox.LOG), model.state()))
    log = disk.read(outbox.LOG)
    assert len(log) == states[-1][0] and len(log) > 300
    kinds = set(kind for kind, _ in outbox.parse(log)[0])
    assert kinds == set((outbox.PUT, outbox.NUM, outbox.ACK)), kinds
    thinned = [b for k, b in outbox.parse(log)[0] if k == outbox.PUT and b[5:9] != bytes(4)]
    assert thinned, "the sample log has no put that thinned a report"
    for cut in range(len(log) + 1):
        cut_disk = FileStorage(scratch())
        cut_disk.write(outbox.LOG, log[:cut])
        recovered = Outbox(cut_disk, max_messages=5)
        committed = [s for end, s in states if end <= cut][-1]
        assert state(recovered) == committed, (cut, state(recovered), committed)
        # the torn tail is gone: what is written next is found after another reset
        recovered.ack(1 << 40)
        recovered.put(b"after", 9)
        again = Outbox(cut_disk, max_messages=5)
        assert state(again) == state(recovered), cut
        assert state(again)[-1][2] == b"after"


def test_power_cuts_at_random_points_lose_no_committed_operation():
    random.seed(20261201)
    disk = FileStorage(scratch())
    model = Model(6)
    resets = 0
    committed_ops = [0]
    while resets < 100:
        flaky = FaultyStorage(disk, random.getrandbits(9))
        try:
            box = Outbox(flaky, max_messages=6, compact_bytes=200)
        except PowerCut:
            resets += 1
            continue
        assert state(box) == model.state(), (resets, state(box), model.state())
        # numbering resumes where it stopped: contiguous across resets and compactions
        assert box.next_seq() == model.numbered_hi + 1, (box.next_seq(), model.numbered_hi)
        pending = [None]
        try:
            while True:
                model = _step(random.getrandbits(16), box, model, pending)
        except PowerCut:
            # the operation that was cut is committed whole or not at all
            resets += 1
            after_reset = state(Outbox(disk, max_messages=6, compact_bytes=200))
            if after_reset != model.state():
                assert after_reset == pending[0].state(), (resets, after_reset)
                model = pending[0]
                committed_ops[0] += 1
    assert committed_ops[0] > 10  # some cut operations were committed, some were not


def test_resume_seq_is_the_oldest_unacked_number_and_first_seq_is_a_floor():
    disk = FileStorage(scratch())
    box = Outbox(disk, first_seq=100)
    for i in range(4):
        box.put(bytes([i]))
    assert box.resume_seq() == 100
    numbers = [box.number(box.next_unsent()) for _ in range(3)]
    assert numbers == [100, 101, 102]
    box.ack(101)
    assert box.resume_seq() == 102
    again = Outbox(disk)  # the log knows where numbering stands
    assert (again.resume_seq(), again.next_seq()) == (102, 103)
    assert [e.seq for e in again.in_flight()] == [102]


def _payload(i, size=600):
    """A payload of its own: a record read at another's offset does not pass for it."""
    return bytes((0x30 + i,)) * size  # one allocation: the test's heap is a board's


def test_the_payloads_stay_on_flash_and_read_back_each_its_own():
    """An entry keeps no payload in the heap (read from flash when it is sent: the heap figure
    is tools/bench's), and what is read back, after a compaction and a reboot too, is what was
    put, each payload its own."""
    flash = FileStorage(scratch())
    box = Outbox(flash, max_messages=64, compact_bytes=4096)
    for i in range(16):
        box.put(_payload(i))
    for e in box.entries():
        for v in e.__dict__.values():
            assert not isinstance(v, (bytes, bytearray)), e.id
    assert box._live_size > 0  # the puts compacted the log (4 KB): the payloads moved
    for e in box.entries()[:8]:
        box.number(e)
    box.ack(8)
    box.put(b"after the acks")
    for reader in (Outbox(flash, max_messages=64), box):  # after a reset, then this box
        entries = reader.entries()
        assert [e.id for e in entries] == list(range(9, 18))
        for i, e in enumerate(entries[:8]):  # one at a time: the test's heap is the board's
            assert e.payload == _payload(8 + i), e.id
        assert entries[8].payload == b"after the acks"

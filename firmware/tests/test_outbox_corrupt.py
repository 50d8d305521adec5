"""A stored payload is checked whole when it is read from flash (firmware/lib/outbox.py): a bad
one is dropped, logged and counted without blocking the acks of the others, and a log longer
than its records does not shift where the next ones are read."""

import outbox
from fwtest import scratch
from outbox import Outbox
from storage import FileStorage
from test_outbox import _payload

HEAPSIZE = "96k"


def _flip(flash, entry, offset):
    """One byte of `entry`'s stored payload inverted on flash, as a failing cell would."""
    byte = bytearray(1)
    flash.read_at(outbox.LOG, entry.at + offset, byte)
    flash.write_at(outbox.LOG, entry.at + offset, bytes((byte[0] ^ 0xFF,)))


def test_a_corrupted_payload_is_dropped_logged_and_counted_and_the_rest_is_kept():
    flash = FileStorage(scratch())
    lines = []
    box = Outbox(flash, max_messages=8, log=lines.append)
    for i in range(4):
        box.put(_payload(i, 50 + i))
    second = box.entries()[1]
    _flip(flash, second, 7)
    try:
        second.payload
    except outbox.Corrupt:
        pass
    else:
        raise AssertionError("a corrupted payload was read as good")
    assert box.dropped_corrupt == 1 and len(lines) == 1 and "bad CRC" in lines[0], lines
    want = [(1, _payload(0, 50)), (3, _payload(2, 52)), (4, _payload(3, 53))]
    assert [(e.id, e.payload) for e in box.entries()] == want
    # the bad frame left the log at once: a reset keeps every record after it
    again = Outbox(flash, max_messages=8)
    assert again.recovered_tail == 0
    assert [(e.id, e.payload) for e in again.entries()] == want
    again.put(b"next")
    assert [e.id for e in Outbox(flash, max_messages=8).entries()] == [1, 3, 4, 5]


def test_a_corrupted_unsent_payload_is_dropped_before_it_gets_a_number():
    flash = FileStorage(scratch())
    box = Outbox(flash, max_messages=8, log=lambda line: None)
    for i in range(3):
        box.put(_payload(i, 40), 5 if i == 0 else 0)
    _flip(flash, box.entries()[0], 0)  # the first to send (its priority is highest)
    entry = box.next_unsent()
    assert entry.id == 2 and box.dropped_corrupt == 1
    assert box.number(entry) == 1  # numbers stay contiguous: no gap for the bridge


def test_a_corrupted_numbered_payload_does_not_block_the_ack():
    """A message found bad only when sent again: the others are published, and once those
    before it are acked the birth's resume_seq passes it, so the bridge settles the gap."""
    import sender
    import window

    flash = FileStorage(scratch())
    box = Outbox(flash, max_messages=8, log=lambda line: None)
    for i in range(3):
        box.put(_payload(i, 45))
    win = window.SendWindow(64, 8, 10000)
    win.on_connected(0, box.next_seq(), box.resume_seq(), box.last_ack)
    win.on_bridge_state("bridge-1", 1, 1, True, 0)
    published = []

    def publish(entry):
        published.append((entry.seq, entry.payload))
        return len(published)

    sender.drain(win, box, publish)
    assert [seq for seq, _ in published] == [1, 2, 3]
    _flip(flash, box.entries()[1], 44)
    win.on_disconnected()  # a new session sends every unacked message again
    win.on_connected(0, box.next_seq(), box.resume_seq(), box.last_ack)
    win.on_bridge_state("bridge-1", 1, 2, True, 0)
    del published[:]
    sender.drain(win, box, publish)
    assert published == [(1, _payload(0, 45)), (3, _payload(2, 45))]
    assert box.dropped_corrupt == 1 and box.resume_seq() == 1
    box.ack(1)
    assert box.resume_seq() == 3  # the next birth: nothing below 3 will ever be sent


def test_an_append_cut_short_without_a_reset_does_not_shift_the_offsets():
    flash = FileStorage(scratch())
    box = Outbox(flash, max_messages=8, log=lambda line: None)
    box.put(_payload(1, 30))
    flash.append(outbox.LOG, b"\xa5\x01\x00")  # a torn append whose error was survived
    box.put(_payload(2, 30))
    want = [_payload(1, 30), _payload(2, 30)]
    assert [e.payload for e in box.entries()] == want and box.dropped_corrupt == 0
    again = Outbox(flash, max_messages=8)
    assert again.recovered_tail == 0 and [e.payload for e in again.entries()] == want

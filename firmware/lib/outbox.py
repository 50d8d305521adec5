"""The flash outbox: every message is committed here before it is sent, and leaves only when a
bridge-signed ack covers it (the Linux agent's rule, agent/outbox.py).

The outbox is a log of framed records in one file; a record is committed once `append`
returned. Frame: magic 0xA5, type, length (2 bytes), body, CRC-32 of type, length and body.

    PUT  id(4) priority(1) drop(4) payload
                                       a message, unnumbered (seq 0); `drop` names the unsent
                                       report thinned out to make room for it (0: none), in
                                       the same record so that both happen or neither
    NUM  id(4) seq(8)                  the message got its data sequence number on first send
    ACK  seq(8)                        every message numbered up to seq is acknowledged
    HEAD seq(8) id(4) hi(8)            first record after a compaction: the last ack, the next
                                       id and the highest number given (none come back, even
                                       once compacted away)

Numbers are contiguous: the next is one past the highest ever numbered or acked, which the log
keeps (the HEAD record carries it through compactions). If the log itself is lost, a
counters.Counter reserved in blocks (the caller's) keeps numbers from repeating:
`Outbox(..., first_seq=counter floor)`.

The heap holds an index of the live messages (id, priority, seq and where the payload lies in
the log), not the payloads: `entry.payload` reads one from flash when it is sent. A full
outbox of 64 reports then takes about 10 KB less of the ESP32's small heap.

A payload read from flash is checked whole: its frame's magic, type, length, id and CRC. One
that fails (a flash bit gone bad since boot) is dropped from the index, logged and counted in
`dropped_corrupt`; it is checked before it is numbered too, so a bad message is normally
dropped before it has a number. One found bad only after (a resend) leaves a gap in the
numbers, which the next birth's resume_seq lets the bridge settle, as for a lost outbox. The
offset of each append is taken from the log's real size, and a log longer than its records
(an append cut short without a reset) is rewritten before the next one.

Recovery on boot reads frames up to the first one that is torn or corrupt (a power cut during
an append) and rewrites the file without that tail, so later records are not lost behind it.
When the file passes `compact_bytes` (and twice what is live), the live messages are written
to a new file that replaces the old one by rename (atomic), so a power cut during compaction
leaves one or the other whole.

    box = Outbox(storage, max_messages=64, log=print)
    box.put(payload, priority)  -> id          (OutboxFull when full of what may not be thinned)
    box.next_unsent()           -> Entry or None: highest priority first, then oldest
    box.number(entry)           -> seq: commit the next number for an entry about to be sent
                                the first time (contiguous: next_seq())
    box.next_seq()              the number the next entry gets
    box.resume_seq()            the lowest number that may still be sent (birth's resume_seq)
    box.in_flight()             numbered, unacked entries in seq order (resent after a reconnect)
    box.ack(seq)                drop every entry numbered up to seq
    box.payloads(priority)      the intact payloads of the entries of that priority
    entry.payload               read from flash, checked (Corrupt: it was bad, now dropped)
"""

from storage import crc32

MAGIC = 0xA5
PUT = 1
NUM = 2
ACK = 3
HEAD = 4
LOG = "outbox.log"
_TMP = "outbox.tmp"


_PUT_HEAD = 4 + 9  # a PUT frame's head and the body's id, priority and drop before the payload
_SHORT = "the log is shorter than its index"
_BAD_CRC = "bad CRC"


class OutboxFull(Exception):
    """No room, and nothing that may be thinned (unsent periodic reports)."""


class Corrupt(Exception):
    """A stored payload failed its check; its entry is already dropped."""


class Entry:
    """One stored message; `seq` is 0 until it is first sent. Its payload is `size` bytes at
    offset `at` of the log, read by `payload`."""

    def __init__(self, box, id_, priority, at, size, seq=0):
        self._box = box
        self.id = id_
        self.priority = priority
        self.at = at
        self.size = size
        self.seq = seq

    @property
    def payload(self):
        return self._box.read_payload(self)


def frame(kind, body):
    """One record as stored: magic, type, length, body, CRC-32."""
    head = bytes((MAGIC, kind)) + len(body).to_bytes(2, "big")
    return head + body + crc32(head[1:] + body).to_bytes(4, "big")


def parse(data):
    """(records, end): the (type, body) of every whole, valid frame from the start of `data`
    and the offset just past the last of them; parsing stops at the first bad frame."""
    records = []
    pos = 0
    n = len(data)
    while pos + 8 <= n and data[pos] == MAGIC:
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        end = pos + 4 + length + 4
        if end > n:
            break
        body = bytes(data[pos + 4 : pos + 4 + length])
        crc = int.from_bytes(data[end - 4 : end], "big")
        if crc32(bytes(data[pos + 1 : pos + 4]) + body) != crc:
            break
        records.append((data[pos + 1], body))
        pos = end
    return records, pos


class Outbox:
    """The outbox on `storage` (storage.FileStorage or anything with its methods)."""

    def __init__(self, storage, max_messages=64, compact_bytes=16384, first_seq=1, log=print):
        self._storage = storage
        self._log = log
        self.dropped_corrupt = 0  # entries whose payload failed its check on flash
        self._rewriting = False
        self.max_messages = max_messages
        self.compact_bytes = compact_bytes
        self._entries = {}  # id -> Entry
        self._next_id = 1
        self.last_ack = 0
        self.numbered_hi = first_seq - 1  # the highest number given out
        self.recovered_tail = 0  # bytes cut from a torn end at boot
        storage.remove(_TMP)  # a compaction cut short; the log is still whole
        data = storage.read(LOG) or b""
        records, end = parse(data)
        self.recovered_tail = len(data) - end
        data = None
        at = 0
        for kind, body in records:
            self._apply(kind, body, at + 4)
            at += 8 + len(body)
        records = None
        self._size = max(storage.size(LOG), 0)
        self._live_size = 0  # unknown until the next compaction
        if self.recovered_tail:
            self._rewrite()
        else:
            self._maybe_compact()

    # ---- replay and state ---------------------------------------------------------------

    def _apply(self, kind, body, at):
        # at: the body's offset in the log
        if kind == PUT:
            id_ = int.from_bytes(body[:4], "big")
            self._entries.pop(int.from_bytes(body[5:9], "big"), None)
            self._entries[id_] = Entry(self, id_, body[4], at + 9, len(body) - 9)
            if id_ >= self._next_id:
                self._next_id = id_ + 1
        elif kind == NUM:
            entry = self._entries.get(int.from_bytes(body[:4], "big"))
            seq = int.from_bytes(body[4:12], "big")
            self.numbered_hi = max(self.numbered_hi, seq)
            if entry is not None:
                entry.seq = seq
        elif kind == HEAD:
            self.last_ack = int.from_bytes(body[:8], "big")
            self._next_id = max(self._next_id, int.from_bytes(body[8:12], "big"))
            self.numbered_hi = max(self.numbered_hi, int.from_bytes(body[12:20], "big"))
        elif kind == ACK:
            seq = int.from_bytes(body[:8], "big")
            if seq > self.last_ack:
                self.last_ack = seq
            self.numbered_hi = max(self.numbered_hi, seq)
            for id_ in [i for i, e in self._entries.items() if 0 < e.seq <= seq]:
                del self._entries[id_]

    def _commit(self, kind, body):
        record = frame(kind, body)
        size = max(self._storage.size(LOG), 0)
        if size != self._size:  # an append cut short (no reset): its bytes would hide the rest
            self._log("outbox log is %d bytes, its records %d: rewritten" % (size, self._size))
            self._rewrite()
            size = self._size
        self._storage.append(LOG, record)
        self._size = size + len(record)
        self._apply(kind, body, size + 4)

    def _drop_corrupt(self, entry, why):
        self._entries.pop(entry.id, None)
        self.dropped_corrupt += 1
        self._log("outbox entry %d (seq %d) dropped: %s" % (entry.id, entry.seq, why))
        if not self._rewriting:  # the bad frame out of the log now: at boot, recovery would
            self._rewrite()  # stop at it and cut every record after it

    def _head_error(self, entry, head):
        # head: the first 8 bytes of the entry's PUT frame; what is wrong with them, or None
        if head[0] != MAGIC or head[1] != PUT or int.from_bytes(head[2:4], "big") != entry.size + 9:
            return "not the frame the index names"
        if int.from_bytes(head[4:8], "big") != entry.id:
            return "the frame of another entry"
        return None

    def read_payload(self, entry):
        """The payload of `entry`, its whole frame read from flash and checked; Corrupt (and
        the entry dropped) when the frame is not intact."""
        n = entry.size + _PUT_HEAD + 4
        buf = bytearray(n)
        view = memoryview(buf)
        if self._storage.read_at(LOG, entry.at - _PUT_HEAD, buf) != n:
            why = _SHORT
        else:
            why = self._head_error(entry, buf)
        if why is None and crc32(view[1 : n - 4]) != int.from_bytes(view[n - 4 :], "big"):
            why = _BAD_CRC
        if why is not None:
            self._drop_corrupt(entry, why)
            raise Corrupt(why)
        return bytes(view[_PUT_HEAD : n - 4])

    def _intact(self, entry):
        # read_payload's checks; the payload read is garbage at once (numbering is not the
        # signing path: the heap is not at its peak here)
        try:
            self.read_payload(entry)
        except Corrupt:
            return False
        return True

    def _live_records(self):
        # (entry or None, record) of the live state, one at a time (a whole file at once would
        # need one contiguous block of heap as large as the outbox)
        head = self.last_ack.to_bytes(8, "big") + self._next_id.to_bytes(4, "big")
        yield None, frame(HEAD, head + self.numbered_hi.to_bytes(8, "big"))
        for id_ in sorted(self._entries):
            e = self._entries[id_]
            try:
                payload = e.payload
            except Corrupt:  # dropped: not carried into the new file
                continue
            yield e, frame(PUT, _put_body(id_, e.priority, 0, payload))
            payload = None
            if e.seq:
                yield None, frame(NUM, id_.to_bytes(4, "big") + e.seq.to_bytes(8, "big"))

    def _rewrite(self):
        # the live state to a new file, record by record, then rename over the log: atomic;
        # the index points into the new file only once it is the log
        self._rewriting = True
        try:
            size, moved = self._write_tmp()
        finally:
            self._rewriting = False
        self._storage.rename(_TMP, LOG)
        for entry, at in moved:
            entry.at = at
        self._size = self._live_size = size

    def _write_tmp(self):
        size = 0
        moved = []
        for entry, record in self._live_records():
            if entry is not None:
                moved.append((entry, size + 4 + 9))  # the payload, after the frame's head
            if size:
                self._storage.append(_TMP, record)
            else:
                self._storage.write(_TMP, record)
            size += len(record)
        return size, moved

    # ---- the interface --------------------------------------------------------------------

    def __len__(self):
        return len(self._entries)

    def entries(self):
        """Every stored entry, oldest first."""
        return [self._entries[i] for i in sorted(self._entries)]

    def put(self, payload, priority=0):
        """Commit a message (unnumbered); its id. At max_messages, the oldest unsent periodic
        report (priority 0) is dropped to make room; triggers are never dropped."""
        drop = 0
        if len(self._entries) >= self.max_messages:
            victim = None
            for id_ in sorted(self._entries):
                e = self._entries[id_]
                if e.seq == 0 and e.priority == 0:
                    victim = e
                    break
            if victim is None:
                raise OutboxFull("outbox full of messages that may not be dropped")
            drop = victim.id
        id_ = self._next_id
        self._commit(PUT, _put_body(id_, priority, drop, payload))
        self._maybe_compact()
        return id_

    def next_unsent(self):
        """The next entry to number and send: highest priority first, then oldest; its payload
        checked on flash first (a bad one is dropped before it gets a number)."""
        while True:
            best = None
            for e in self._entries.values():
                if e.seq == 0 and (
                    best is None
                    or e.priority > best.priority
                    or (e.priority == best.priority and e.id < best.id)
                ):
                    best = e
            if best is None or self._intact(best):
                return best

    def payloads(self, priority):
        """The intact payloads of the entries of `priority`, oldest first."""
        for e in self.entries():
            if e.priority == priority:
                try:
                    yield e.payload
                except Corrupt:
                    continue

    def next_seq(self):
        return self.numbered_hi + 1

    def resume_seq(self):
        """The lowest number that may still be sent: every lower one is acked or never will be
        sent, so the bridge may settle them (the birth message's resume_seq)."""
        flying = self.in_flight()
        return flying[0].seq if flying else self.next_seq()

    def number(self, entry):
        """Commit the next number for `entry` (before it goes on the wire); that number."""
        if entry.seq:
            raise ValueError("entry is already numbered")
        seq = self.next_seq()
        self._commit(NUM, entry.id.to_bytes(4, "big") + seq.to_bytes(8, "big"))
        return seq

    def in_flight(self):
        """Numbered entries not yet acknowledged, in seq order."""
        return sorted([e for e in self._entries.values() if e.seq], key=_seq_of)

    def ack(self, seq):
        """Every entry numbered up to `seq` is acknowledged end to end: drop them."""
        if seq <= self.last_ack:
            return
        self._commit(ACK, seq.to_bytes(8, "big"))
        self._maybe_compact()

    def unsent(self):
        return sum(1 for e in self._entries.values() if e.seq == 0)

    def _maybe_compact(self):
        if self._size > self.compact_bytes and self._size > 2 * self._live_size:
            self._rewrite()


def _put_body(id_, priority, drop, payload):
    return id_.to_bytes(4, "big") + bytes((priority,)) + drop.to_bytes(4, "big") + bytes(payload)


def _seq_of(entry):
    return entry.seq

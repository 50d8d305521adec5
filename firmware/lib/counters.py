"""Counters that never repeat a number after a reset: reserved on flash in blocks.

A counter keeps `reserved`, the first number it may NOT issue without writing first, in two
slots written alternately (name.0, name.1), each framed with a generation and a CRC. Before a
number at or past `reserved` is issued, the next block is reserved on flash; so a power cut at
any byte of any write leaves a valid slot whose reservation is above every issued number, and
after a reset counting resumes there. The cost of a reset is a gap of less than one block
(the birth message's resume_seq tells the bridge to settle it).

    c = Counter(storage, "seq", block=64, first=1)
    c.take()        the next number (writes a slot once per block)
    c.peek()        the number take() would return
"""

from storage import crc32

_MAGIC = b"CN"
_SLOT_LEN = 2 + 4 + 8 + 4  # magic, generation, reserved, crc32


def _pack(generation, reserved):
    body = _MAGIC + generation.to_bytes(4, "big") + reserved.to_bytes(8, "big")
    return body + crc32(body).to_bytes(4, "big")


def _unpack(raw):
    # (generation, reserved), or None for an absent, torn or corrupt slot
    if raw is None or len(raw) != _SLOT_LEN or raw[:2] != _MAGIC:
        return None
    if crc32(raw[:14]) != int.from_bytes(raw[14:], "big"):
        return None
    return int.from_bytes(raw[2:6], "big"), int.from_bytes(raw[6:14], "big")


class Counter:
    """A persistent counter; reads its slots and reserves a first block on construction."""

    def __init__(self, storage, name, block=64, first=1):
        if block < 1:
            raise ValueError("block must be at least 1")
        self._storage = storage
        self._name = name
        self._block = block
        best = None
        for i in (0, 1):
            slot = _unpack(storage.read(name + "." + str(i)))
            if slot is not None and (best is None or slot[0] > best[0]):
                best = slot
        self._generation = 0 if best is None else best[0]
        self._next = first if best is None else max(first, best[1])
        self._reserved = self._next
        self._reserve(self._next + block)

    def _reserve(self, upto):
        generation = self._generation + 1
        self._storage.write(self._name + "." + str(generation & 1), _pack(generation, upto))
        self._generation = generation
        self._reserved = upto

    def peek(self):
        return self._next

    def take(self):
        """The next number; never one issued before, across any number of resets."""
        n = self._next
        if n >= self._reserved:
            self._reserve(n + self._block)
        self._next = n + 1
        return n

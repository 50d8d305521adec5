"""Per-sender anti-replay window: highest sequence number plus a 64-entry bitmap.

The scheme of IPsec (RFC 4303 section 3.4.3) and OSCORE (RFC 8613 section 7.4): a number above
the highest seen is new; a number inside the window is new once; anything at or below
``highest - 64`` is stale and refused forever. The window is a frozen value: `accept` returns the
next window, so a caller that fails to commit simply keeps the old one.

The same two numbers also give the end-to-end acknowledgement: `contiguous` is the highest number
such that every number at or below it has been accepted or has fallen out of the window (and so
can never be accepted). Senders keep at most 64 messages beyond the last ack in flight, so
nothing they send can fall out of the window unseen.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from protocol.errors import ProtocolError, Reason

WINDOW = 64
MAX_SEQ = (1 << 63) - 1
_MASK = (1 << WINDOW) - 1
_PACK = struct.Struct(">QQ")


@dataclass(frozen=True)
class ReplayWindow:
    """`hi` is the highest accepted number (0 before the first); bit i of `bits` marks hi - i.

    Sequence numbers start at 1.
    """

    hi: int = 0
    bits: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.hi <= MAX_SEQ:
            raise ValueError(f"hi must be 0..{MAX_SEQ}")
        if not 0 <= self.bits <= _MASK:
            raise ValueError("bits must fit in 64 bits")
        if self.hi == 0 and self.bits != 0:
            raise ValueError("an empty window has no bits set")
        if self.hi > 0 and not self.bits & 1:
            raise ValueError("the highest number is always marked")

    def verdict(self, seq: int) -> Reason | None:
        """None if `seq` would be accepted, else REPLAY (seen) or STALE (too old)."""
        if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= MAX_SEQ:
            return Reason.STALE
        if seq > self.hi:
            return None
        offset = self.hi - seq
        if offset >= WINDOW:
            return Reason.STALE
        return Reason.REPLAY if self.bits >> offset & 1 else None

    def accept(self, seq: int) -> ReplayWindow:
        """The window after accepting `seq`; ProtocolError(REPLAY or STALE) if it is not new."""
        reason = self.verdict(seq)
        if reason is not None:
            raise ProtocolError(reason, f"sequence {seq} (highest {self.hi})")
        if seq > self.hi:
            shift = seq - self.hi
            bits = ((self.bits << shift) | 1) & _MASK if shift < WINDOW else 1
            return ReplayWindow(seq, bits)
        return ReplayWindow(self.hi, self.bits | 1 << (self.hi - seq))

    def settle_below(self, seq: int) -> ReplayWindow:
        """The window after learning that no number below `seq` will ever be sent (the sender
        said so in its birth certificate): those numbers count as seen, so the contiguous edge
        can pass a gap the sender left when it lost its outbox."""
        if seq - 1 <= self.contiguous:
            return self
        if seq - 1 >= self.hi:
            return ReplayWindow(min(seq - 1, MAX_SEQ), _MASK)
        below = self.hi - (seq - 1)  # offsets >= below are numbers < seq
        return ReplayWindow(self.hi, self.bits | (_MASK << below & _MASK))

    @property
    def contiguous(self) -> int:
        """Highest n such that no number <= n can still be accepted."""
        # Numbers below 1 do not exist, so they count as settled.
        bits = self.bits | (_MASK << self.hi & _MASK if self.hi < WINDOW else 0)
        run = 0
        for offset in range(WINDOW - 1, -1, -1):
            if not bits >> offset & 1:
                break
            run += 1
        return max(0, self.hi - WINDOW + run)

    def to_bytes(self) -> bytes:
        """16 bytes: hi and bits as big-endian unsigned 64-bit integers."""
        return _PACK.pack(self.hi, self.bits)

    @classmethod
    def from_bytes(cls, data: bytes) -> ReplayWindow:
        """Inverse of to_bytes; ValueError on anything that is not a valid window."""
        if len(data) != _PACK.size:
            raise ValueError(f"a replay window is {_PACK.size} bytes")
        hi, bits = _PACK.unpack(data)
        return cls(hi, bits)

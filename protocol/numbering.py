"""Numbering an encoded message without decoding it (the outbox numbers a message at its first
transmission). Split from protocol.messages, which re-exports `with_seq`."""

from __future__ import annotations

from protocol.errors import ProtocolError, Reason
from protocol.replay import MAX_SEQ


def _uint_bytes(major: int, n: int) -> bytes:
    """The head of a CBOR item of major type `major` with argument n, shortest form."""
    if n < 24:
        return bytes((major << 5 | n,))
    for size, code in ((1, 24), (2, 25), (4, 26), (8, 27)):
        if n < 1 << (8 * size):
            return bytes((major << 5 | code,)) + n.to_bytes(size, "big")
    raise ProtocolError(Reason.BAD_FIELD, f"{n} does not fit in 64 bits")


def with_seq(payload: bytes, seq: int) -> bytes:
    """`payload` (an encoded message whose seq is 0) with seq set, without decoding it.

    Deterministic encoding puts keys 0, 1, 2, 3 first in that order, so the seq's single zero
    byte follows the sender text; the result equals encoding the message with that seq.
    """
    if not 1 <= seq <= MAX_SEQ:
        raise ProtocolError(Reason.BAD_FIELD, f"seq {seq} out of range")
    head = payload[0]
    pos = 1 if 0xA0 <= head <= 0xB7 else 2  # map of < 24 entries, or with a one-byte length
    if payload[pos : pos + 2] != b"\x00\x01" or payload[pos + 2] != 0x01:
        raise ProtocolError(Reason.BAD_CBOR, "not an encoded message of this version")
    pos += 4  # key 0 and version, key 1 and kind (kinds are < 24)
    if payload[pos] != 0x02:
        raise ProtocolError(Reason.BAD_CBOR, "key 2 (sender) is not where it belongs")
    text = payload[pos + 1]
    length, start = (text - 0x60, pos + 2) if text < 0x78 else (payload[pos + 2], pos + 3)
    pos = start + length
    if payload[pos : pos + 2] != b"\x03\x00":
        raise ProtocolError(Reason.BAD_CBOR, "the message's seq is not 0")
    return payload[: pos + 1] + _uint_bytes(0, seq) + payload[pos + 2 :]

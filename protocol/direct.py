"""The payloads the bridge sends most (Ack, Decision, PoolState, Risk), written as deterministic
CBOR directly from their field values, without building a message object or calling cbor2.

With a large fleet the bridge signs one ack per message it stores, so building an output is on
its hot path. Every function here returns exactly the bytes of `messages.encode` of the same
message (tests/protocol/test_direct.py proves it over valid values and the project vectors).

The caller vouches for the values: they are not validated again, so use these only for values
the caller built itself from validated inputs (the bridge's own outputs). Out-of-range values
give a payload that `messages.decode` refuses, never a different valid one.
"""

from __future__ import annotations

from collections.abc import Sequence

from protocol.messages import KEY_KIND, KEY_VERSION, MAJOR_VERSION, Kind


def _head(major: int, n: int) -> bytes:
    """The head of a CBOR item of major type `major` and argument n, in the shortest form
    (RFC 8949 section 4.2.1)."""
    if n < 24:
        return bytes((major << 5 | n,))
    if n < 0x100:
        return bytes((major << 5 | 24, n))
    if n < 0x1_0000:
        return bytes((major << 5 | 25,)) + n.to_bytes(2, "big")
    if n < 0x1_0000_0000:
        return bytes((major << 5 | 26,)) + n.to_bytes(4, "big")
    return bytes((major << 5 | 27,)) + n.to_bytes(8, "big")


def _int(n: int) -> bytes:
    """Major type 0 for n >= 0, major type 1 (-1 - n) below (RFC 8949 section 3.1)."""
    return _head(0, n) if n >= 0 else _head(1, -1 - n)


def _text(s: str) -> bytes:
    data = s.encode()
    return _head(3, len(data)) + data


def _header(kind: Kind, size: int, sender: str, seq: int, boot: int, ts_ms: int) -> list[bytes]:
    """Map head of `size` entries and keys 0-5 (the common header), in key order."""
    return [
        _head(5, size),
        bytes((KEY_VERSION, MAJOR_VERSION, KEY_KIND, kind)),
        b"\x02", _text(sender),
        b"\x03", _head(0, seq),
        b"\x04", _head(0, boot),
        b"\x05", _head(0, ts_ms),
    ]  # fmt: skip


def ack(*, sender: str, seq: int, boot: int, ts_ms: int, device: str, ack_seq: int) -> bytes:
    """`messages.encode(Ack(...))` of these fields."""
    parts = _header(Kind.ACK, 8, sender, seq, boot, ts_ms)
    parts += (b"\x0a", _text(device), b"\x0b", _head(0, ack_seq))
    return b"".join(parts)


def decision(
    *,
    sender: str,
    seq: int,
    boot: int,
    ts_ms: int,
    user: str,
    device: str,
    device_seq: int,
    decision: str,
    action: str,
    result: str,
    amount_fen: int = 0,
    risk_pm: int = 0,
    reasons: Sequence[str] = (),
    received_ms: int = 0,
) -> bytes:
    """`messages.encode(Decision(...))` of these fields (optional fields at their default are
    left out, as the schema does)."""
    tail = [
        b"\x0a", _text(user),
        b"\x0b", _text(device),
        b"\x0c", _head(0, device_seq),
        b"\x0d", _text(decision),
        b"\x0e", _text(action),
        b"\x0f", _text(result),
    ]  # fmt: skip
    size = 12
    if amount_fen != 0:
        tail += (b"\x10", _int(amount_fen))
        size += 1
    if risk_pm != 0:
        tail += (b"\x11", _head(0, risk_pm))
        size += 1
    if reasons:
        tail += (b"\x12", _head(4, len(reasons)), *map(_text, reasons))
        size += 1
    if received_ms != 0:
        tail += (b"\x13", _head(0, received_ms))
        size += 1
    return b"".join(_header(Kind.DECISION, size, sender, seq, boot, ts_ms) + tail)


def pool_state(
    *,
    sender: str,
    seq: int,
    boot: int,
    ts_ms: int,
    user: str,
    status: str,
    limit_fen: int,
    available_fen: int,
    outstanding_fen: int,
    held_fen: int,
    rate_bps: int,
    version: int,
    updated_ms: int = 0,
) -> bytes:
    """`messages.encode(PoolState(...))` of these fields."""
    parts = _header(Kind.POOL_STATE, 15 if updated_ms else 14, sender, seq, boot, ts_ms)
    parts += (
        b"\x0a", _text(user),
        b"\x0b", _text(status),
        b"\x0c", _int(limit_fen),
        b"\x0d", _int(available_fen),
        b"\x0e", _int(outstanding_fen),
        b"\x0f", _int(held_fen),
        b"\x10", _head(0, rate_bps),
        b"\x11", _head(0, version),
    )  # fmt: skip
    if updated_ms:  # optional: left out at its default, as messages.encode does
        parts += (b"\x12", _head(0, updated_ms))
    return b"".join(parts)


def risk(
    *,
    sender: str,
    seq: int,
    boot: int,
    ts_ms: int,
    device: str,
    category: str,
    reason: str,
    detail: str = "",
    device_seq: int = 0,
    risk_pm: int = 0,
) -> bytes:
    """`messages.encode(Risk(...))` of these fields (optional fields at their default are left
    out, as the schema does). With a fleet-wide alert (an unknown model, say) the bridge writes
    one of these for every report it stores."""
    tail = [b"\x0a", _text(device), b"\x0b", _text(category), b"\x0c", _text(reason)]
    size = 9
    if detail:
        tail += (b"\x0d", _text(detail))
        size += 1
    if device_seq:
        tail += (b"\x0e", _head(0, device_seq))
        size += 1
    if risk_pm:
        tail += (b"\x0f", _head(0, risk_pm))
        size += 1
    return b"".join(_header(Kind.RISK, size, sender, seq, boot, ts_ms) + tail)

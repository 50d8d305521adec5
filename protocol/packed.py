"""A packed integer map: a report's fingerprint as one byte string instead of a CBOR map.

A fingerprint is 24 signed fixed-point integers under the keys 0..23. As a CBOR map it costs
a key byte per entry and up to nine bytes per value (85 bytes for a typical ESP32 session);
packed it costs about 40, which keeps a device report within four SHA-512 blocks per Ed25519
signature (docs/protocol.md section 3, "Packed fingerprint"). The form:

    byte 0        n, the number of keys (1..max_items): the map's keys are 0..n-1
    then          the values of keys 0..m-1 (m <= n) as zigzag LEB128 varints; the values of
                  keys m..n-1 are 0 and are left out, so the last written value is never 0

Both directions are strict, so each map has exactly one packed form: a varint is at most ten
bytes, in its shortest form (no final 0x00 group after the first), within int64; a written
trailing 0, more values than n, or n outside 1..max_items is refused.

    pack(values)          a map with the keys 0..n-1 -> bytes (ValueError if it cannot be)
    unpack(data, max)     bytes -> {0: v0, ..., n-1: v(n-1)} (ValueError names the problem)
    packable(value, max)  whether a map has exactly the keys 0..n-1, 1 <= n <= max
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
MAX_VARINT_BYTES = 10  # 64 bits in 7-bit groups


def packable(value: Mapping[Any, Any], max_items: int) -> bool:
    """Whether `value` has exactly the keys 0..n-1 with 1 <= n <= max_items."""
    n = len(value)
    return 1 <= n <= max_items and all(type(k) is int and 0 <= k < n for k in value)


def pack(values: Mapping[int, int]) -> bytes:
    """The packed form of a map whose keys are 0..n-1 (1 <= n <= 255) and values int64."""
    n = len(values)
    if not 1 <= n <= 255 or any(type(k) is not int or not 0 <= k < n for k in values):
        raise ValueError("a packed map has the keys 0..n-1, n from 1 to 255")
    m = n
    while m and values[m - 1] == 0:
        m -= 1
    out = bytearray((n,))
    for i in range(m):
        v = values[i]
        if not INT64_MIN <= v <= INT64_MAX:
            raise ValueError("values must be signed 64-bit integers")
        z = 2 * v if v >= 0 else -2 * v - 1  # zigzag: small magnitudes, small codes
        while z >= 0x80:
            out.append(0x80 | (z & 0x7F))
            z >>= 7
        out.append(z)
    return bytes(out)


def unpack(data: bytes, max_items: int) -> dict[int, int]:
    """The map a packed form holds; ValueError for any form `pack` would not write."""
    if not data or not 1 <= data[0] <= max_items:
        raise ValueError(f"a packed map starts with its key count, 1 to {max_items}")
    n = data[0]
    values: list[int] = []
    pos = 1
    while pos < len(data):
        z = shift = 0
        start = pos
        while True:
            if pos == len(data) or pos - start == MAX_VARINT_BYTES:
                raise ValueError("truncated or over-long varint")
            byte = data[pos]
            pos += 1
            z |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        if byte == 0 and pos - start > 1:
            raise ValueError("varint not in its shortest form")
        v = z >> 1 if not z & 1 else -(z >> 1) - 1
        if not INT64_MIN <= v <= INT64_MAX:
            raise ValueError("values must be signed 64-bit integers")
        values.append(v)
    if len(values) > n:
        raise ValueError(f"{len(values)} values for {n} keys")
    if values and values[-1] == 0:
        raise ValueError("trailing zero values are left out")
    return {i: values[i] if i < len(values) else 0 for i in range(n)}

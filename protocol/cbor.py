"""Strict CBOR at the edge of the contract: deterministic out, a small plain data model in.

Encoding uses RFC 8949 section 4.2 deterministic encoding (`cbor2.dumps(canonical=True)`). Our
maps have either only unsigned-integer keys below 24 or only text keys, and for such maps the
length-first order that cbor2 applies and the bytewise order of RFC 8949 section 4.2.1 agree.

Decoding accepts one data item and nothing after it, refuses duplicate map keys, and maps the
result onto plain Python: int, str, bytes, bool, None, list and dict. Everything else that a full
decoder might produce (tags other than an expected outer one, floats, dates, bignums, shared
references, undefined) is refused with ProtocolError(BAD_CBOR). cbor2 6 returns tuples and
frozendicts inside tags; they come out as lists and dicts here. cbor2 >= 6 is required because
duplicate map keys must be refused (`allow_duplicate_keys` is new in 6.0).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import cbor2

from protocol.errors import ProtocolError, Reason

MAX_DEPTH = 8
"""Nesting deeper than this is refused; no message of the contract needs more than 4."""

Plain = int | str | bytes | bool | None | list[Any] | dict[Any, Any]


def dumps(obj: object) -> bytes:
    """Encode deterministically (RFC 8949 section 4.2)."""
    return cbor2.dumps(obj, canonical=True)


def loads(data: bytes, *, tag: int | None = None, plain: bool = True) -> Any:
    """Decode exactly one data item from `data` into plain Python values.

    With `tag`, the item must be that tag (for COSE_Sign1, 18), which is removed; a missing or
    different tag raises ProtocolError(NOT_COSE). Anything malformed, trailing, duplicated or
    unsupported raises ProtocolError(BAD_CBOR).

    `plain=False` skips the walk over the result (it returns what cbor2 made, tuples and
    frozendicts included): for callers that check every value they use themselves, such as the
    message schema and the COSE parser, on the hot path.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ProtocolError(Reason.BAD_CBOR, "input is not bytes")
    raw = bytes(data)
    stream = io.BytesIO(raw)
    try:
        decoder = cbor2.CBORDecoder(stream, allow_duplicate_keys=False, max_depth=MAX_DEPTH + 2)
        item = decoder.decode()
    except Exception as exc:  # the decoder raises several unrelated types on hostile input
        raise ProtocolError(Reason.BAD_CBOR, f"cannot decode: {exc}") from exc
    if stream.tell() != len(raw):
        raise ProtocolError(Reason.BAD_CBOR, f"{len(raw) - stream.tell()} trailing bytes")
    if tag is not None:
        if not isinstance(item, cbor2.CBORTag) or item.tag != tag:
            raise ProtocolError(Reason.NOT_COSE, f"expected an item with tag {tag}")
        item = item.value
    return _plain(item, 0) if plain else item


_SCALARS = (str, bytes, bool, type(None))
_INT_MIN = -(1 << 64)
_INT_END = 1 << 64


def _plain(item: object, depth: int) -> Plain:
    """Check `item` against the plain model; lists and dicts are kept, tuples and frozendicts
    (cbor2 6 inside tags) become lists and dicts. Exact type checks keep this fast: it runs on
    every message the bridge receives."""
    kind = type(item)
    if kind is int:
        # Major types 0 and 1 reach -2**64..2**64-1; anything beyond came from a bignum tag.
        if not _INT_MIN <= item < _INT_END:  # type: ignore[operator]
            raise ProtocolError(Reason.BAD_CBOR, "bignums are not part of the contract")
        return item  # type: ignore[return-value]
    if kind in _SCALARS:
        return item  # type: ignore[return-value]
    if depth >= MAX_DEPTH:
        raise ProtocolError(Reason.BAD_CBOR, "nested too deeply")
    if kind is list or kind is tuple:
        values = [_plain(v, depth + 1) for v in item]  # type: ignore[attr-defined]
        return values
    if isinstance(item, Mapping):
        out: dict[Any, Any] = {}
        for key, value in item.items():
            if type(key) not in (int, str, bytes):
                raise ProtocolError(Reason.BAD_CBOR, "map keys must be integers or strings")
            out[key] = _plain(value, depth + 1)
        return out
    raise ProtocolError(Reason.BAD_CBOR, f"unsupported CBOR item {kind.__name__}")

"""Strict CBOR at the edge of the contract: deterministic out, a small plain data model in.

Encoding uses RFC 8949 section 4.2 deterministic encoding (`cbor2.dumps(canonical=True)`). Our
maps have either only unsigned-integer keys below 24 or only text keys, and for such maps the
length-first order that cbor2 applies and the bytewise order of RFC 8949 section 4.2.1 agree.

Decoding accepts one data item and nothing after it, refuses duplicate map keys and
indefinite lengths (RFC 8949 section 3.2; deterministic encoding has none), and maps the result
onto plain Python: int, str, bytes, bool, None, list and dict. Everything else that a full
decoder might produce (tags other than an expected outer one, floats, bignums, shared
references, undefined and other simple values) is refused with ProtocolError(BAD_CBOR).

No tag is ever given meaning while decoding: cbor2's semantic decoders (dates, bignums,
decimals, regular expressions, MIME messages, sets, ...) are replaced for every tag number by
one that keeps the tag as a `cbor2.CBORTag` around its plainly decoded content, so a tag costs
what its content costs and nothing more, wherever it sits (an unsigned COSE header included).
cbor2 >= 6.1 is required: its decoder takes `allow_duplicate_keys` (6.0's refuses the
argument), `allow_indefinite` and a `semantic_decoders` mapping it asks about every tag.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import cbor2

from protocol.errors import ProtocolError, Reason

MAX_DEPTH = 8
"""Nesting deeper than this is refused; no message of the contract needs more than 4."""

Plain = int | str | bytes | bool | None | list[Any] | dict[Any, Any]


class _KeepTags(Mapping[int, Callable[[Any, bool], cbor2.CBORTag]]):
    """cbor2's `semantic_decoders` for every tag number: the tag stays a CBORTag. cbor2 asks
    this mapping before its own decoders, for each tag it meets."""

    def __getitem__(self, tag: int) -> Callable[[Any, bool], cbor2.CBORTag]:
        return lambda value, _immutable: cbor2.CBORTag(tag, value)

    def __iter__(self) -> Iterator[int]:
        return iter(())

    def __len__(self) -> int:
        return 0


_KEEP_TAGS = _KeepTags()


def dumps(obj: object) -> bytes:
    """Encode deterministically (RFC 8949 section 4.2)."""
    return cbor2.dumps(obj, canonical=True)


def loads(data: bytes, *, tag: int | None = None, plain: bool = True) -> Any:
    """Decode exactly one data item from `data` into plain Python values.

    With `tag`, the item must be that tag (for COSE_Sign1, 18), which is removed; a missing or
    different tag raises ProtocolError(NOT_COSE). Anything malformed, trailing, duplicated or
    unsupported raises ProtocolError(BAD_CBOR).

    `plain=False` skips the walk over the result (it returns what cbor2 made: tags stay
    CBORTags, tuples and frozendicts may appear): for callers that check every value they use
    themselves and pass the rest through `plain`, such as the message schema and the COSE
    parser, on the hot path.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ProtocolError(Reason.BAD_CBOR, "input is not bytes")
    raw = bytes(data)
    stream = io.BytesIO(raw)
    try:
        decoder = cbor2.CBORDecoder(
            stream,
            semantic_decoders=_KEEP_TAGS,
            allow_duplicate_keys=False,
            allow_indefinite=False,
            max_depth=MAX_DEPTH + 2,
        )
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


def plain(item: object, depth: int = 0) -> Plain:
    """`item` (from `loads(..., plain=False)`) checked against the plain model, at `depth`
    levels below the top: ProtocolError(BAD_CBOR) for a float, a tag, undefined or another
    simple value anywhere inside it. For the values a schema does not know (docs/protocol.md
    section 3: readers refuse these under unknown keys too)."""
    return _plain(item, depth)


_SCALARS = (int, str, bytes, bool, type(None))
_OUTSIDE = {
    float: "floats are not part of the contract",
    cbor2.CBORTag: "tags are not part of the contract (bignums are tags too)",
    type(cbor2.undefined): "undefined is not part of the contract",
    cbor2.CBORSimpleValue: "simple values are not part of the contract",
}


def _plain(item: object, depth: int) -> Plain:
    """Check `item` against the plain model; lists and dicts are kept, tuples and frozendicts
    become lists and dicts. Exact type checks keep this fast: it runs on every message the
    bridge receives. (Integers need no range check: with every tag kept as a tag, only major
    types 0 and 1 make them, and those reach -2**64..2**64-1.)"""
    kind = type(item)
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
    raise ProtocolError(
        Reason.BAD_CBOR, _OUTSIDE.get(kind, f"unsupported CBOR item {kind.__name__}")
    )

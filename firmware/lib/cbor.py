"""CBOR for the device: deterministic encoding (RFC 8949 section 4.2.1) and the decode subset
the contract uses.

    encode(value)        int, bytes, bytearray, str, bool, None, list, tuple, dict, Tag -> bytes
    decode(data)         exactly one item, nothing after it -> plain values (Tag for tags)
    head(major, n)       the shortest head of an item (RFC 8949 section 3)

Decoding accepts definite lengths only, integers within 64 bits, byte and text strings,
arrays, maps with integer, text or byte-string keys (a duplicate key is refused), false, true,
null and tags other than bignums (2, 3). Floats, undefined, simple values, indefinite lengths,
bignums and nesting deeper than MAX_DEPTH raise CBORError, as protocol/cbor.py refuses them.
"""

from errors import ProtocolError

MAX_DEPTH = 8

_UINT64_END = 1 << 64


class CBORError(ProtocolError):
    """Bytes that are not CBOR this device accepts, or a value it cannot encode."""

    def __init__(self, detail):
        super().__init__("bad_cbor", detail)


class Tag:
    """A tagged item: tag number and value (RFC 8949 section 3.4)."""

    def __init__(self, tag, value):
        self.tag = tag
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Tag) and other.tag == self.tag and other.value == self.value

    def __repr__(self):
        return "Tag(%d, %r)" % (self.tag, self.value)


def head(major, n):
    """The head of an item of major type `major` with argument n, in the shortest form."""
    mt = major << 5
    if n < 24:
        return bytes((mt | n,))
    if n < 0x100:
        return bytes((mt | 24, n))
    if n < 0x10000:
        return bytes((mt | 25,)) + n.to_bytes(2, "big")
    if n < 0x100000000:
        return bytes((mt | 26,)) + n.to_bytes(4, "big")
    if n < _UINT64_END:
        return bytes((mt | 27,)) + n.to_bytes(8, "big")
    raise CBORError("integer out of the 64-bit range")


def encode(value):
    """Deterministic CBOR of `value`: shortest heads, definite lengths, map keys ordered by
    their encoded bytes (RFC 8949 section 4.2.1)."""
    out = []  # type: list
    _encode(value, out)
    return b"".join(out)


def _encode(value, out):
    # bool before int: True is an int in Python
    if value is True:
        out.append(b"\xf5")
    elif value is False:
        out.append(b"\xf4")
    elif value is None:
        out.append(b"\xf6")
    elif isinstance(value, int):
        if value >= 0:
            out.append(head(0, value))
        else:
            out.append(head(1, -1 - value))
    elif isinstance(value, (bytes, bytearray, memoryview)):
        out.append(head(2, len(value)))
        out.append(bytes(value))
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        out.append(head(3, len(raw)))
        out.append(raw)
    elif isinstance(value, (list, tuple)):
        out.append(head(4, len(value)))
        for item in value:
            _encode(item, out)
    elif isinstance(value, dict):
        out.append(head(5, len(value)))
        pairs = sorted([(encode(k), v) for k, v in value.items()], key=_first)
        for i in range(len(pairs)):
            if i and pairs[i][0] == pairs[i - 1][0]:
                raise CBORError("duplicate map key")
            out.append(pairs[i][0])
            _encode(pairs[i][1], out)
    elif isinstance(value, Tag):
        out.append(head(6, value.tag))
        _encode(value.value, out)
    else:
        raise CBORError("cannot encode %s" % type(value).__name__)


def _first(pair):
    return pair[0]


def decode(data):
    """Decode exactly one item from `data`; CBORError for anything malformed, trailing or
    outside the subset."""
    mv = memoryview(data)
    value, pos = _decode(mv, 0, 0)
    if pos != len(mv):
        raise CBORError("%d trailing bytes" % (len(mv) - pos))
    return value


def _argument(mv, pos, info):
    # RFC 8949 section 3: additional information 24-27 carries a 1, 2, 4 or 8 byte argument
    if info < 24:
        return info, pos
    if info > 27:
        raise CBORError("indefinite length or reserved additional information")
    size = 1 << (info - 24)
    end = pos + size
    if end > len(mv):
        raise CBORError("truncated")
    return int.from_bytes(mv[pos:end], "big"), end


def _decode(mv, pos, depth):
    if pos >= len(mv):
        raise CBORError("truncated")
    initial = mv[pos]
    major = initial >> 5
    info = initial & 0x1F
    pos += 1
    if major == 7:
        if info == 20:
            return False, pos
        if info == 21:
            return True, pos
        if info == 22:
            return None, pos
        raise CBORError("floats, undefined and simple values are not part of the contract")
    n, pos = _argument(mv, pos, info)
    if major == 0:
        return n, pos
    if major == 1:
        return -1 - n, pos
    if major == 2 or major == 3:
        end = pos + n
        if end > len(mv):
            raise CBORError("truncated string")
        raw = bytes(mv[pos:end])
        if major == 2:
            return raw, end
        try:
            return raw.decode("utf-8"), end
        except UnicodeError as exc:
            raise CBORError("text is not UTF-8") from exc
    if depth >= MAX_DEPTH:
        raise CBORError("nested too deeply")
    if major == 4:
        if n > len(mv) - pos:  # every item takes at least one byte
            raise CBORError("truncated array")
        items = []
        for _ in range(n):
            item, pos = _decode(mv, pos, depth + 1)
            items.append(item)
        return items, pos
    if major == 5:
        if n > (len(mv) - pos) // 2:
            raise CBORError("truncated map")
        result = {}
        for _ in range(n):
            key, pos = _decode(mv, pos, depth + 1)
            if not isinstance(key, (int, str, bytes)) or isinstance(key, bool):
                raise CBORError("map keys must be integers or strings")
            if key in result:
                raise CBORError("duplicate map key")
            result[key], pos = _decode(mv, pos, depth + 1)
        return result, pos
    # major 6
    if n == 2 or n == 3:
        raise CBORError("bignums are not part of the contract")
    value, pos = _decode(mv, pos, depth + 1)
    return Tag(n, value), pos

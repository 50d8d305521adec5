"""firmware/lib/cbor.py against RFC 8949 appendix A (tests/vectors/rfc8949_appendix_a.json)."""

import cbor
import vectors

HEAPSIZE = "128k"


def _cases():
    doc = vectors.load("rfc8949_appendix_a.json")
    for case in doc["vectors"]:
        try:
            expected = vectors.value(case["value"])
        except vectors.Unsupported:
            expected = vectors.Unsupported
        yield case, expected


def _is_bignum(case):
    return "bignum" in case["value"]


def test_appendix_a_decodes_to_the_value_or_is_refused():
    decoded = refused = 0
    for case, expected in _cases():
        raw = bytes.fromhex(case["hex"])
        outside = expected is vectors.Unsupported or _is_bignum(case) or not case["deterministic"]
        if outside:
            # floats, simple values, undefined, bignums, indefinite lengths: not the contract's
            try:
                got = cbor.decode(raw)
            except cbor.CBORError:
                refused += 1
                continue
            raise AssertionError("%s decoded to %r, expected a refusal" % (case["diag"], got))
        got = cbor.decode(raw)
        assert got == expected, "%s: %r != %r" % (case["diag"], got, expected)
        decoded += 1
    assert decoded >= 40 and refused >= 30, (decoded, refused)


def test_appendix_a_encodes_deterministically_byte_for_byte():
    encoded = 0
    for case, expected in _cases():
        if expected is vectors.Unsupported or _is_bignum(case) or not case["deterministic"]:
            continue
        assert cbor.encode(expected).hex() == case["hex"], case["diag"]
        encoded += 1
    assert encoded >= 40


def test_map_keys_are_ordered_by_their_encoding():
    # RFC 8949 section 4.2.1: bytewise order of the encoded keys, so 10 < 100 < -1 < "z" < "aa"
    got = cbor.encode({"aa": 0, "z": 0, -1: 0, 100: 0, 10: 0})
    assert got.hex() == "a50a00186400200061" + "7a00" + "62616100"


def test_truncation_at_every_byte_is_refused():
    raw = cbor.encode({1: [b"abc", "d", -5, {2: True}], 3: None, 4: 1 << 40})
    for end in range(len(raw)):
        try:
            cbor.decode(raw[:end])
        except cbor.CBORError:
            continue
        raise AssertionError("a prefix of %d bytes decoded" % end)
    assert cbor.decode(raw)[4] == 1 << 40


def test_refusals():
    for hexed, why in (
        ("a201000100", "duplicate key"),
        ("0000", "trailing byte"),
        ("818181818181818181818100", "nested too deeply"),
        ("a1f500", "boolean key"),
        ("a1800100", "array key"),
        ("1c", "reserved additional information"),
        ("62c328", "text that is not UTF-8"),
        ("9a7fffffff", "an array longer than the input"),
    ):
        try:
            got = cbor.decode(bytes.fromhex(hexed))
        except cbor.CBORError:
            continue
        raise AssertionError("%s decoded (%s): %r" % (hexed, why, got))


def test_encode_refuses_what_has_no_deterministic_form():
    for bad in (1.5, 1 << 64, -(1 << 64) - 1, object()):
        try:
            cbor.encode(bad)
        except cbor.CBORError:
            continue
        raise AssertionError("encoded %r" % (bad,))

from __future__ import annotations

import cbor2
import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import cbor, cose
from protocol.errors import ProtocolError, Reason
from tests.harness.independent import pycose_verify

KEY = nacl.signing.SigningKey(
    bytes.fromhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
)
OTHER = nacl.signing.SigningKey(bytes(32))
KID = cose.kid_for(KEY.verify_key)


def resolve(kid: bytes) -> nacl.signing.VerifyKey | None:
    return KEY.verify_key if kid == KID else None


def handmade(
    protected: object,
    unprotected: object = None,
    payload: object = b"hi",
    signature: object = None,
    tag: int | None = 18,
    key: nacl.signing.SigningKey = KEY,
) -> bytes:
    """A COSE_Sign1 built from parts with cbor2, signed over whatever protected bytes we give."""
    prot = protected if isinstance(protected, bytes) else cbor2.dumps(protected)
    if signature is None:
        body = payload if isinstance(payload, bytes) else b""
        signature = key.sign(cbor2.dumps(["Signature1", prot, b"", body])).signature
    items = [prot, {} if unprotected is None else unprotected, payload, signature]
    return cbor2.dumps(cbor2.CBORTag(tag, items) if tag is not None else items)


@given(st.binary(max_size=4096))
def test_round_trip(payload: bytes) -> None:
    signed = cose.verify1(cose.sign1(payload, KEY, KID), resolve)
    assert (signed.payload, signed.kid, signed.alg) == (payload, KID, cose.ALG_EDDSA)


@given(st.binary(max_size=70_000), st.binary(max_size=300), st.binary(max_size=30))
def test_sig_structure_is_the_deterministic_cbor_of_the_array(
    payload: bytes, protected: bytes, aad: bytes
) -> None:
    expected = cbor2.dumps(["Signature1", protected, aad, payload], canonical=True)
    assert cose.sig_structure(protected, payload, aad) == expected


@given(st.binary(max_size=70_000), st.binary(min_size=1, max_size=64))
def test_sign1_bytes_are_the_deterministic_cbor_of_the_message(payload: bytes, kid: bytes) -> None:
    message = cose.sign1(payload, KEY, kid)
    item = cbor2.loads(message)
    assert cbor2.dumps(cbor2.CBORTag(18, list(item.value)), canonical=True) == message


def test_wire_layout() -> None:
    item = cbor2.loads(cose.sign1(b"\xa0", KEY, KID))
    assert item.tag == 18
    protected, unprotected, payload, signature = item.value
    assert cbor2.loads(protected) == {1: -8, 4: KID}
    assert unprotected == {} and payload == b"\xa0" and len(signature) == 64


def test_every_single_bit_flip_is_refused() -> None:
    message = cose.sign1(bytes(range(40)), KEY, KID)
    for bit in range(len(message) * 8):
        flipped = bytearray(message)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(ProtocolError):
            cose.verify1(bytes(flipped), resolve)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.binary(max_size=600), min_size=1, max_size=8))
def test_pycose_verifies_what_sign1_makes(payloads: list[bytes]) -> None:
    messages = [cose.sign1(p, KEY, KID) for p in payloads]
    results = pycose_verify([(bytes(KEY.verify_key), msg) for msg in messages])
    assert [r["ok"] for r in results] == [True] * len(payloads)
    assert [bytes.fromhex(str(r["payload"])) for r in results] == payloads
    assert [r["kid"] for r in results] == [KID.hex()] * len(payloads)


def test_pycose_refuses_a_tampered_message() -> None:
    good = cose.sign1(b"pay", KEY, KID)
    bad = good[:-1] + bytes([good[-1] ^ 1])
    other = cose.sign1(b"pay", OTHER, KID)
    ok = [r["ok"] for r in pycose_verify([(bytes(KEY.verify_key), m) for m in (good, bad, other)])]
    assert ok == [True, False, False]


def test_alg_minus_19_is_accepted() -> None:
    signed = cose.verify1(handmade({1: -19, 4: KID}), resolve)
    assert (signed.alg, signed.payload) == (-19, b"hi")


def test_signature_covers_the_received_protected_bytes() -> None:
    # Non-canonical but valid header encoding (kid before alg): verified as received.
    protected = (
        bytes.fromhex("a2") + cbor2.dumps(4) + cbor2.dumps(KID) + cbor2.dumps(1) + cbor2.dumps(-8)
    )
    assert cose.verify1(handmade(protected), resolve).kid == KID
    # The same header re-encoded canonically is other bytes: the old signature must fail.
    original = cbor2.loads(handmade(protected)).value
    swapped = handmade(cbor2.dumps({1: -8, 4: KID}), signature=original[3])
    with pytest.raises(ProtocolError) as err:
        cose.verify1(swapped, resolve)
    assert err.value.reason is Reason.BAD_SIGNATURE


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (handmade({1: -8, 4: KID}, tag=None), Reason.NOT_COSE),
        (handmade({1: -8, 4: KID}, tag=98), Reason.NOT_COSE),
        (cbor2.dumps(cbor2.CBORTag(18, [b"", {}, b"x"])), Reason.NOT_COSE),
        (cbor2.dumps(cbor2.CBORTag(18, "nope")), Reason.NOT_COSE),
        (handmade({1: -8, 4: KID}, payload=None), Reason.NOT_COSE),
        (handmade({1: -8, 4: KID}, unprotected=[]), Reason.NOT_COSE),
        (handmade(b"\xff\xff"), Reason.BAD_HEADER),
        (handmade([1, 2]), Reason.BAD_HEADER),
        (handmade({4: KID}), Reason.BAD_HEADER),
        (handmade({1: -8}), Reason.BAD_HEADER),
        (handmade({1: -8, 4: "text kid"}), Reason.BAD_HEADER),
        (handmade({1: -8, 4: b""}), Reason.BAD_HEADER),
        (handmade({1: -8, 2: [99], 4: KID}), Reason.BAD_HEADER),
        (handmade({1: -8}, unprotected={4: KID}), Reason.BAD_HEADER),
        (handmade({1: -8, 4: KID}, unprotected={1: -7}), Reason.BAD_HEADER),
        (handmade({1: -7, 4: KID}), Reason.UNSUPPORTED_ALG),
        (handmade({1: "EdDSA", 4: KID}), Reason.UNSUPPORTED_ALG),
        (handmade({1: True, 4: KID}), Reason.BAD_HEADER),
        (handmade({1: -8, 4: KID}, signature=b"\x00" * 63), Reason.BAD_SIGNATURE),
        (handmade({1: -8, 4: KID}, signature=b"\x00" * 64), Reason.BAD_SIGNATURE),
        (handmade({1: -8, 4: KID}, key=OTHER), Reason.BAD_SIGNATURE),
        (handmade({1: -8, 4: b"unknown!"}), Reason.UNKNOWN_DEVICE),
        (cose.sign1(b"x", KEY, KID) + b"\x00", Reason.BAD_CBOR),
        (b"", Reason.BAD_CBOR),
        (cose.sign1(b"x" * 4400, KEY, KID), Reason.OVERSIZE),
    ],
)
def test_rejections(message: bytes, reason: Reason) -> None:
    with pytest.raises(ProtocolError) as err:
        cose.verify1(message, resolve)
    assert err.value.reason is reason


def test_resolver_may_refuse_a_revoked_key() -> None:
    def revoked(kid: bytes) -> nacl.signing.VerifyKey | None:
        raise ProtocolError(Reason.REVOKED_KEY, kid.hex())

    with pytest.raises(ProtocolError) as err:
        cose.verify1(cose.sign1(b"x", KEY, KID), revoked)
    assert err.value.reason is Reason.REVOKED_KEY


def test_kid_is_the_sha256_prefix_of_the_public_key() -> None:
    import hashlib

    assert hashlib.sha256(bytes(KEY.verify_key)).digest()[:8] == KID
    with pytest.raises(ProtocolError):
        cose.kid_for(b"short")


# Tags cbor2 would otherwise give meaning while decoding (RFC 8949 appendix A where it has
# them): a date, an epoch time, bignums, a decimal fraction, a bigfloat whose exponent no
# machine could expand, a regular expression, a MIME message, a set, an unknown tag.
TAGS = [
    cbor2.CBORTag(0, "2013-03-21T20:04:00Z"),
    cbor2.CBORTag(1, 1363896240),
    cbor2.CBORTag(1, 1 << 63),
    cbor2.CBORTag(2, bytes.fromhex("010000000000000000")),
    cbor2.CBORTag(3, b"\xff" * 512),
    cbor2.CBORTag(4, [-2, 27315]),
    cbor2.CBORTag(5, [(1 << 63) - 1, 1]),
    cbor2.CBORTag(35, "(unclosed"),
    cbor2.CBORTag(36, "Content-Type: text/plain\n\nhello"),
    cbor2.CBORTag(258, [1, 2, 3]),
    cbor2.CBORTag(99_999, {1: 2}),
]


@pytest.mark.parametrize("tagged", TAGS, ids=lambda t: f"tag{t.tag}")
def test_tags_are_never_given_meaning_while_decoding(tagged: cbor2.CBORTag) -> None:
    data = cbor2.dumps(tagged)
    assert cbor.loads(data, plain=False) == tagged  # still a tag around its plain content
    with pytest.raises(ProtocolError) as err:
        cbor.loads(data)
    assert err.value.reason is Reason.BAD_CBOR


@pytest.mark.parametrize("tagged", TAGS, ids=lambda t: f"tag{t.tag}")
def test_a_tag_in_the_unprotected_header_is_read_only_after_the_signature(
    tagged: cbor2.CBORTag,
) -> None:
    asked: list[bytes] = []

    def resolving(kid: bytes) -> nacl.signing.VerifyKey | None:
        asked.append(kid)
        return resolve(kid)

    cases = [
        (handmade({1: -8, 4: KID}, unprotected={33: tagged}), Reason.BAD_HEADER),
        (handmade({1: -8, 4: KID}, unprotected={33: tagged}, key=OTHER), Reason.BAD_SIGNATURE),
        (handmade({1: -8, 4: b"unknown!"}, unprotected={33: tagged}), Reason.UNKNOWN_DEVICE),
        (handmade({1: -8, 4: KID}, unprotected={7: [1, {2: tagged}]}), Reason.BAD_HEADER),
    ]
    for message, reason in cases:
        asked.clear()
        with pytest.raises(ProtocolError) as err:
            cose.verify1(message, resolving)
        assert err.value.reason is reason, err.value
        assert len(asked) == 1  # the key was looked up: the envelope itself was fine


def test_plain_values_in_the_unprotected_header_are_still_accepted() -> None:
    # RFC 9052 leaves the bucket open; only alg and kid (and values outside CBOR's plain
    # model) are refused there.
    message = handmade({1: -8, 4: KID}, unprotected={33: [1, "x", b"y", None, True]})
    assert cose.verify1(message, resolve).payload == b"hi"

"""COSE_Sign1 (RFC 9052 section 4.2) with Ed25519: the envelope of every message.

Wire form: ``18([protected: bstr .cbor {1: -8, 4: kid}, unprotected: {}, payload: bstr,
signature: bstr .size 64])``. The signature is Ed25519 (RFC 8032) over the Sig_structure
``["Signature1", protected, h'', payload]`` (RFC 9052 section 4.4), computed on the protected
bytes exactly as received, never on a re-encoding. The kid sits in the protected header so that
the signature covers it. Verification accepts alg -8 (EdDSA, RFC 9053) and -19 (Ed25519, the
fully-specified identifier of RFC 9864).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import cbor2
import nacl.bindings
import nacl.exceptions
import nacl.signing

from protocol import cbor
from protocol.errors import ProtocolError, Reason

TAG_SIGN1 = 18
ALG_EDDSA = -8
ALG_ED25519 = -19
ACCEPTED_ALGS = frozenset({ALG_EDDSA, ALG_ED25519})
HDR_ALG = 1
HDR_CRIT = 2
HDR_KID = 4
KID_LEN = 8
MAX_KID_LEN = 64
MAX_ENVELOPE_BYTES = 4096 + 256
"""Largest envelope accepted: a 4 KiB payload plus headers, kid and signature."""

Resolver = Callable[[bytes], nacl.signing.VerifyKey | None]


@dataclass(frozen=True)
class Signed:
    """A verified COSE_Sign1: the payload bytes and which key signed them."""

    payload: bytes
    kid: bytes
    alg: int
    key: nacl.signing.VerifyKey


def kid_for(public_key: bytes | nacl.signing.VerifyKey) -> bytes:
    """The key id of this project: the first 8 bytes of SHA-256 over the raw public key."""
    raw = bytes(public_key)
    if len(raw) != 32:
        raise ProtocolError(Reason.BAD_HEADER, "an Ed25519 public key is 32 bytes")
    return hashlib.sha256(raw).digest()[:KID_LEN]


def _bstr_head(n: int) -> bytes:
    """The head of a byte string of length n (RFC 8949 section 3: major type 2, shortest)."""
    if n < 24:
        return bytes((0x40 | n,))
    if n < 0x100:
        return bytes((0x58, n))
    if n < 0x10000:
        return b"\x59" + n.to_bytes(2, "big")
    if n < 0x1_0000_0000:
        return b"\x5a" + n.to_bytes(4, "big")
    return b"\x5b" + n.to_bytes(8, "big")


_SIGNATURE1 = b"\x84" + cbor2.dumps("Signature1")  # array(4), "Signature1"
_SIGN1_HEAD = b"\xd2\x84"  # tag 18, array(4)
_EMPTY_MAP = b"\xa0"
_SIG_HEAD = b"\x58\x40"  # bstr(64)


def sig_structure(protected: bytes, payload: bytes, external_aad: bytes = b"") -> bytes:
    """The bytes that are signed (RFC 9052 section 4.4, context "Signature1"): the
    deterministic CBOR of ["Signature1", protected, external_aad, payload], built directly."""
    return b"".join((
        _SIGNATURE1,
        _bstr_head(len(protected)), protected,
        _bstr_head(len(external_aad)), external_aad,
        _bstr_head(len(payload)), payload,
    ))  # fmt: skip


@functools.lru_cache(maxsize=1024)
def _protected_for(kid: bytes) -> bytes:
    return cbor.dumps({HDR_ALG: ALG_EDDSA, HDR_KID: kid})


def sign1(payload: bytes, key: nacl.signing.SigningKey, kid: bytes) -> bytes:
    """Sign `payload` and return the tagged COSE_Sign1 message (deterministic CBOR, built
    directly: tag 18, [protected, {}, payload, signature])."""
    if not 1 <= len(kid) <= MAX_KID_LEN:
        raise ProtocolError(Reason.BAD_HEADER, f"kid must be 1-{MAX_KID_LEN} bytes")
    protected = _protected_for(bytes(kid))
    payload = bytes(payload)
    signature = key.sign(sig_structure(protected, payload)).signature
    return b"".join((
        _SIGN1_HEAD,
        _bstr_head(len(protected)), protected,
        _EMPTY_MAP,
        _bstr_head(len(payload)), payload,
        _SIG_HEAD, signature,
    ))  # fmt: skip


class Signer:
    """`sign1` with one key, its protected header and the fixed parts of the Sig_structure and
    of the envelope prepared once: the same bytes as `sign1(payload, key, kid)`, for a sender
    that signs many messages (the bridge signs an ack for nearly every message it stores)."""

    def __init__(self, key: nacl.signing.SigningKey, kid: bytes | None = None) -> None:
        kid = kid_for(key.verify_key) if kid is None else bytes(kid)
        if not 1 <= len(kid) <= MAX_KID_LEN:
            raise ProtocolError(Reason.BAD_HEADER, f"kid must be 1-{MAX_KID_LEN} bytes")
        self.kid = kid
        # libsodium's secret key (seed then public key), so each signature is one call.
        self._secret = nacl.bindings.crypto_sign_seed_keypair(bytes(key))[1]
        protected = _bstr_head(len(_protected_for(kid))) + _protected_for(kid)
        # RFC 9052 section 4.4: ["Signature1", protected, external_aad = h'', payload]
        self._tbs_head = _SIGNATURE1 + protected + _bstr_head(0)
        self._envelope_head = _SIGN1_HEAD + protected + _EMPTY_MAP

    def sign1(self, payload: bytes) -> bytes:
        """The tagged COSE_Sign1 of `payload`, byte for byte what `sign1` returns."""
        body = _bstr_head(len(payload)) + payload
        signed = nacl.bindings.crypto_sign(self._tbs_head + body, self._secret)
        # crypto_sign returns the 64-byte signature followed by the message.
        return b"".join((self._envelope_head, body, _SIG_HEAD, signed[:64]))


def verify1(message: bytes, resolve: Resolver) -> Signed:
    """Verify a COSE_Sign1 message and return its payload.

    `resolve(kid)` returns the key for a kid or None when the kid is unknown; it may itself raise
    ProtocolError (for example REVOKED_KEY). Every failure is a ProtocolError with a reason.

    The unprotected header is not covered by the signature, so it is checked only after the
    signature verified; until then it is what the strict decoder made of it, tags included as
    undecoded CBORTags (protocol.cbor), so nothing in it costs work or raises first.
    """
    if not isinstance(message, bytes | bytearray | memoryview):
        raise ProtocolError(Reason.NOT_COSE, "message is not bytes")
    if len(message) > MAX_ENVELOPE_BYTES:
        raise ProtocolError(Reason.OVERSIZE, f"{len(message)} bytes, limit {MAX_ENVELOPE_BYTES}")
    protected, unprotected, payload, signature = _parts(message)
    if type(signature) is not bytes or len(signature) != 64:
        raise ProtocolError(Reason.BAD_SIGNATURE, "an Ed25519 signature is 64 bytes")
    alg, kid = _protected_header(protected)
    key = resolve(kid)
    if key is None:
        raise ProtocolError(Reason.UNKNOWN_DEVICE, f"no key for kid {kid.hex()}")
    try:
        key.verify(sig_structure(protected, payload), signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError) as exc:
        raise ProtocolError(
            Reason.BAD_SIGNATURE, f"signature does not verify (kid {kid.hex()})"
        ) from exc
    if unprotected:  # anyone may change it in transit: read only what the signature let pass
        _unprotected_header(unprotected)
    return Signed(payload=payload, kid=kid, alg=alg, key=key)


def peek_payload(message: bytes) -> bytes:
    """The payload of a COSE_Sign1 WITHOUT verifying it: only for finding which key to verify
    with (a self-signed enrollment names its own key) or re-signing one's own messages."""
    return _parts(message)[2]


def peek_kid(message: bytes) -> bytes:
    """The kid of a COSE_Sign1 WITHOUT verifying it (which key signed one's own stored
    messages)."""
    protected = _parts(message)[0]
    return _protected_header(protected)[1]


def _parts(message: bytes) -> tuple[bytes, Mapping[object, object], bytes, object]:
    item = cbor.loads(bytes(message), tag=TAG_SIGN1, plain=False)
    if type(item) not in (list, tuple) or len(item) != 4:
        raise ProtocolError(Reason.NOT_COSE, "COSE_Sign1 is an array of four items")
    protected, unprotected, payload, signature = item
    if type(protected) is not bytes or not isinstance(unprotected, Mapping):
        raise ProtocolError(Reason.NOT_COSE, "headers must be a bstr and a map")
    if type(payload) is not bytes:
        raise ProtocolError(Reason.NOT_COSE, "payload must be attached as a bstr")
    return protected, unprotected, payload, signature


def _unprotected_header(unprotected: Mapping[object, object]) -> None:
    """Refuse what the unprotected bucket must not hold (the contract sends it empty)."""
    if HDR_ALG in unprotected or HDR_KID in unprotected:
        # RFC 9052 section 3: a label must not appear in both buckets; ours live in protected.
        raise ProtocolError(Reason.BAD_HEADER, "alg and kid belong in the protected header")
    try:
        cbor.plain(unprotected, 1)
    except ProtocolError as exc:
        raise ProtocolError(Reason.BAD_HEADER, f"unprotected header: {exc.detail}") from exc


@functools.lru_cache(maxsize=4096)
def _protected_header(protected: bytes) -> tuple[int, bytes]:
    """(alg, kid) of a protected header; cached, since a sender's header never changes (a
    refusal is an exception, which is not cached)."""
    try:
        header = cbor.loads(protected)
    except ProtocolError as exc:
        raise ProtocolError(Reason.BAD_HEADER, f"protected header: {exc.detail}") from exc
    if not isinstance(header, dict):
        raise ProtocolError(Reason.BAD_HEADER, "protected header must be a map")
    if HDR_CRIT in header:
        # RFC 9052 section 3.1: we understand no critical extension, so we must refuse.
        raise ProtocolError(Reason.BAD_HEADER, "critical header parameters are not supported")
    alg = header.get(HDR_ALG)
    if isinstance(alg, bool) or not isinstance(alg, int | str):
        raise ProtocolError(Reason.BAD_HEADER, "protected header has no alg")
    if alg not in ACCEPTED_ALGS:
        raise ProtocolError(Reason.UNSUPPORTED_ALG, f"alg {alg!r}; accepted: -8 (EdDSA), -19")
    kid = header.get(HDR_KID)
    if not isinstance(kid, bytes) or not 1 <= len(kid) <= MAX_KID_LEN:
        raise ProtocolError(Reason.BAD_HEADER, "protected header needs a kid of 1-64 bytes")
    assert isinstance(alg, int)
    return alg, kid

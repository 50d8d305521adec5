"""COSE_Sign1 (RFC 9052 section 4.2) with Ed25519, exactly as protocol/cose.py builds it.

Wire form: 18([protected: bstr .cbor {1: -8, 4: kid}, unprotected: {}, payload: bstr,
signature: bstr .size 64]); the signature covers the Sig_structure
["Signature1", protected, h'', payload] (RFC 9052 section 4.4) over the protected bytes as
received. The kid is the first 8 bytes of SHA-256 over the raw public key.

    kid_for(public)                  the project's key id
    sign1(payload, key, kid=None)    tagged COSE_Sign1 bytes (key: ed25519.SigningKey)
    verify1(message, resolve)        (payload, kid); resolve(kid) -> public key bytes or None
"""

import hashlib

import cbor
import ed25519
from errors import ProtocolError

TAG_SIGN1 = 18
ALG_EDDSA = -8
ALG_ED25519 = -19
HDR_ALG = 1
HDR_CRIT = 2
HDR_KID = 4
KID_LEN = 8
MAX_KID_LEN = 64
MAX_ENVELOPE_BYTES = 4096 + 256

_SIGNATURE1 = b"\x84" + cbor.encode("Signature1")  # array(4), "Signature1"
_SIGN1_HEAD = b"\xd2\x84"  # tag 18, array(4)
_EMPTY_MAP = b"\xa0"
_SIG_HEAD = b"\x58\x40"  # bstr(64)
_EMPTY_BSTR = b"\x40"


def kid_for(public):
    """The first 8 bytes of SHA-256 over the 32-byte public key."""
    if len(public) != 32:
        raise ProtocolError("bad_header", "an Ed25519 public key is 32 bytes")
    return hashlib.sha256(public).digest()[:KID_LEN]


def protected_for(kid):
    """The protected header {1: -8, 4: kid} as deterministic CBOR."""
    return cbor.encode({HDR_ALG: ALG_EDDSA, HDR_KID: bytes(kid)})


def sig_structure(protected, payload):
    """The signed bytes: ["Signature1", protected, h'', payload] (RFC 9052 section 4.4)."""
    return b"".join((
        _SIGNATURE1,
        cbor.head(2, len(protected)), protected,
        _EMPTY_BSTR,
        cbor.head(2, len(payload)), payload,
    ))


def sign1(payload, key, kid=None, protected=None):
    """Sign `payload` with `key`; `protected` may be passed in precomputed (protected_for)."""
    if protected is None:
        if kid is None:
            kid = kid_for(key.public)
        if not 1 <= len(kid) <= MAX_KID_LEN:
            raise ProtocolError("bad_header", "kid must be 1-64 bytes")
        protected = protected_for(kid)
    payload = bytes(payload)
    signature = key.sign(sig_structure(protected, payload))
    return b"".join((
        _SIGN1_HEAD,
        cbor.head(2, len(protected)), protected,
        _EMPTY_MAP,
        cbor.head(2, len(payload)), payload,
        _SIG_HEAD, signature,
    ))


def parts(message):
    """(protected, unprotected, payload, signature) of a COSE_Sign1, NOT verified."""
    if len(message) > MAX_ENVELOPE_BYTES:
        raise ProtocolError("oversize", "%d bytes" % len(message))
    try:
        item = cbor.decode(message)
    except ProtocolError as exc:
        raise ProtocolError("not_cose", exc.detail) from exc
    if not isinstance(item, cbor.Tag) or item.tag != TAG_SIGN1:
        raise ProtocolError("not_cose", "expected an item with tag 18")
    item = item.value
    if not isinstance(item, list) or len(item) != 4:
        raise ProtocolError("not_cose", "COSE_Sign1 is an array of four items")
    protected, unprotected, payload, signature = item
    if not isinstance(protected, bytes) or not isinstance(unprotected, dict):
        raise ProtocolError("not_cose", "headers must be a bstr and a map")
    if not isinstance(payload, bytes):
        raise ProtocolError("not_cose", "payload must be attached as a bstr")
    return protected, unprotected, payload, signature


def _protected_header(protected):
    try:
        header = cbor.decode(protected)
    except ProtocolError as exc:
        raise ProtocolError("bad_header", "protected header: " + exc.detail) from exc
    if not isinstance(header, dict):
        raise ProtocolError("bad_header", "protected header must be a map")
    if HDR_CRIT in header:
        # RFC 9052 section 3.1: no critical extension is understood, so it must be refused
        raise ProtocolError("bad_header", "critical header parameters are not supported")
    alg = header.get(HDR_ALG)
    if alg is None or isinstance(alg, bool):
        raise ProtocolError("bad_header", "protected header has no alg")
    if alg != ALG_EDDSA and alg != ALG_ED25519:
        raise ProtocolError("unsupported_alg", "alg %r; accepted: -8 (EdDSA), -19" % (alg,))
    kid = header.get(HDR_KID)
    if not isinstance(kid, bytes) or not 1 <= len(kid) <= MAX_KID_LEN:
        raise ProtocolError("bad_header", "protected header needs a kid of 1-64 bytes")
    return kid


def verify1(message, resolve):
    """Verify a COSE_Sign1 and return (payload, kid); every failure is a ProtocolError."""
    protected, unprotected, payload, signature = parts(message)
    if not isinstance(signature, bytes) or len(signature) != 64:
        raise ProtocolError("bad_signature", "an Ed25519 signature is 64 bytes")
    if HDR_ALG in unprotected or HDR_KID in unprotected:
        # RFC 9052 section 3: a label must not appear in both buckets
        raise ProtocolError("bad_header", "alg and kid belong in the protected header")
    kid = _protected_header(protected)
    public = resolve(kid)
    if public is None:
        raise ProtocolError("unknown_device", "no key for kid " + kid.hex())
    if not ed25519.verify(public, sig_structure(protected, payload), signature):
        raise ProtocolError("bad_signature", "signature does not verify (kid %s)" % kid.hex())
    return payload, kid

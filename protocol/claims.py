"""Claim tokens: provisioning a fleet without an operator per device (issue 18 item 7).

`cloud-bridge claims issue` signs a batch of short-lived tokens with the bridge key: each is a
COSE_Sign1 (RFC 9052 section 4.2) over a CBOR map (batch id, token id, user, fleet, expiry). A
factory line gives each device one token. On first boot the device makes its key, logs in to the
broker with the token's claim account (`claim_account`, password `claim_password`: anyone holding
the token may use that account, which can only publish its claim and read the answer), and
publishes its self-signed enrollment carrying the token (Enrollment key 17). The bridge answers
with the device's broker credentials sealed to the device's key (`seal_credentials`: a libsodium
sealed box to the X25519 form of the Ed25519 key it enrolled). Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import nacl.bindings
import nacl.exceptions
import nacl.public
import nacl.signing

from protocol import cbor, cose
from protocol.errors import ProtocolError, Reason
from protocol.fields import Id, Text, UInt
from protocol.names import CLAIM_ACCOUNT_PREFIX
from protocol.schema import Record
from protocol.schema import field as _f

ACCOUNT_PREFIX = CLAIM_ACCOUNT_PREFIX  # `claim-<token id>`; no device id starts so
TOKEN_ID_BYTES = 8


@dataclass(frozen=True, kw_only=True)
class ClaimToken(Record):
    """What a claim token says; signed by the bridge key."""

    batch: str = _f(1, Id())
    token: str = _f(2, Id())
    user: str = _f(3, Id())
    fleet: str = _f(4, Id())
    expires_ms: int = _f(5, UInt())


@dataclass(frozen=True, kw_only=True)
class Credentials(Record):
    """The broker account a claimed device uses from now on (sealed in the answer)."""

    username: str = _f(1, Id())
    password: str = _f(2, Text(128))


def seal_token(token: ClaimToken, key: nacl.signing.SigningKey) -> bytes:
    return cose.sign1(cbor.dumps(token.to_map()), key, cose.kid_for(key.verify_key))


def open_token(data: bytes, bridge_key: nacl.signing.VerifyKey) -> ClaimToken:
    """The token if the bridge key signed it; ProtocolError otherwise (never an other error)."""
    kid = cose.kid_for(bridge_key)
    signed = cose.verify1(data, lambda k: bridge_key if k == kid else None)
    raw = cbor.loads(signed.payload)
    if not isinstance(raw, dict) or any(type(k) is not int for k in raw):
        raise ProtocolError(Reason.BAD_FIELD, "a claim token is a map with integer keys")
    try:
        return ClaimToken(**ClaimToken._kwargs(raw))
    except (TypeError, ValueError) as exc:
        raise ProtocolError(Reason.BAD_FIELD, f"claim token: {exc}") from exc


def claim_account(token_id: str) -> str:
    """The broker username of a token's claim account."""
    return ACCOUNT_PREFIX + token_id


def claim_password(token: bytes) -> str:
    """The claim account's password: derived from the token's bytes (whoever holds the token
    may enroll one device with it; the account can do nothing else)."""
    return hashlib.sha256(b"cp-claim-account\x00" + token).hexdigest()


def seal_credentials(creds: Credentials, device_public_key: bytes) -> bytes:
    """Encrypt to the device: a sealed box to the X25519 form of its Ed25519 public key."""
    curve = nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(device_public_key)
    box = nacl.public.SealedBox(nacl.public.PublicKey(curve))
    return bytes(box.encrypt(cbor.dumps(creds.to_map())))


def open_credentials(sealed: bytes, device_key: nacl.signing.SigningKey) -> Credentials:
    """Decrypt with the device's key; ProtocolError if it was not sealed to it."""
    box = nacl.public.SealedBox(device_key.to_curve25519_private_key())
    try:
        raw = cbor.loads(box.decrypt(sealed))
    except nacl.exceptions.CryptoError as exc:
        raise ProtocolError(Reason.BAD_SIGNATURE, "credentials not sealed to this key") from exc
    if not isinstance(raw, dict):
        raise ProtocolError(Reason.BAD_FIELD, "credentials are a map")
    return Credentials(**Credentials._kwargs(raw))

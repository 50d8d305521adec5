"""Signed messages end to end: a typed message in, COSE_Sign1 bytes out, and back."""

from __future__ import annotations

import nacl.signing

from protocol import cose, messages
from protocol.messages import Message


def seal(message: Message, key: nacl.signing.SigningKey) -> bytes:
    """Encode `message` and sign it with `key` (kid derived from the public key)."""
    return cose.sign1(messages.encode(message), key, cose.kid_for(key.verify_key))


def unseal(envelope: bytes, resolve: cose.Resolver) -> tuple[cose.Signed, Message]:
    """Verify `envelope` and decode its payload; every failure is a ProtocolError."""
    signed = cose.verify1(envelope, resolve)
    return signed, messages.decode(signed.payload)

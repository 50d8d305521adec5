"""MQTT account secrets and their Mosquitto password-file hashes (the `$7$` format), pure.

Mosquitto 2.x stores a password as ``$7$ITERATIONS$SALT$HASH``: PBKDF2-HMAC-SHA512 of the UTF-8
password over a 12-byte salt, a 64-byte derived key, salt and key in standard base64 with
padding. `mosquitto_passwd` writes exactly this; the broker reads the iteration count from each
line, so a file written here is a file Mosquitto accepts.

A device or a bridge keeps its secret in a 0600 file (`mqtt.pass`); only the hash travels (in the
enrollment record, key 16) and is stored (the bridge's database, the broker's password file).
Secrets are 32 random bytes (base64url), so the hash cannot be brute-forced whatever the
iteration count: `ITERATIONS` stays at Mosquitto's own default, which keeps a broker's cost per
CONNECT low when a whole fleet reconnects at once.

It sits in `protocol/` because both sides need it (the agent hashes at provisioning, the bridge
writes the broker's files) and it has no I/O: randomness is passed in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from protocol.errors import ProtocolError, Reason

SECRET_FILE = "mqtt.pass"
"""Where a device or a bridge keeps its broker secret: beside its key / in its data directory
(mode 0600)."""

PREFIX = "$7$"
ITERATIONS = 101
"""Mosquitto 2.x's default (`mosquitto_passwd`); see the module docstring for why it is enough."""
SALT_BYTES = 12
KEY_BYTES = 64
SECRET_BYTES = 32
MAX_HASH_CHARS = 160
"""Longest hash text accepted (a 101-iteration hash is 110 characters)."""

_B64 = r"[A-Za-z0-9+/]+={0,2}"
_FORMAT = re.compile(rf"\$7\$([1-9][0-9]{{0,8}})\$({_B64})\$({_B64})")


@dataclass(frozen=True)
class PasswordHash:
    """One `$7$` hash, parsed."""

    iterations: int
    salt: bytes
    key: bytes

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ProtocolError(Reason.BAD_FIELD, "iterations must be at least 1")
        if not self.salt:
            raise ProtocolError(Reason.BAD_FIELD, "the salt must not be empty")
        if len(self.key) != KEY_BYTES:
            raise ProtocolError(Reason.BAD_FIELD, f"the key must be {KEY_BYTES} bytes")

    def __str__(self) -> str:
        salt = base64.b64encode(self.salt).decode()
        key = base64.b64encode(self.key).decode()
        return f"{PREFIX}{self.iterations}${salt}${key}"


def derive(password: str, salt: bytes, iterations: int = ITERATIONS) -> PasswordHash:
    """The hash of `password` with this salt and iteration count."""
    key = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, KEY_BYTES)
    return PasswordHash(iterations, salt, key)


def hash_password(
    password: str, rand: Callable[[int], bytes] = os.urandom, iterations: int = ITERATIONS
) -> str:
    """A `$7$` line part for `password`, with a fresh salt from `rand`."""
    if not password:
        raise ProtocolError(Reason.BAD_FIELD, "an MQTT password must not be empty")
    return str(derive(password, rand(SALT_BYTES), iterations))


def parse(text: str) -> PasswordHash:
    """Parse a `$7$` hash; ProtocolError(BAD_FIELD) naming what is wrong otherwise."""
    if not isinstance(text, str) or len(text) > MAX_HASH_CHARS:
        raise ProtocolError(
            Reason.BAD_FIELD, f"an MQTT password hash is text of at most {MAX_HASH_CHARS} chars"
        )
    match = _FORMAT.fullmatch(text)
    if match is None:
        raise ProtocolError(
            Reason.BAD_FIELD,
            "an MQTT password hash must look like $7$ITERATIONS$SALT$HASH (mosquitto_passwd)",
        )
    try:
        salt = base64.b64decode(match.group(2), validate=True)
        key = base64.b64decode(match.group(3), validate=True)
    except binascii.Error as exc:
        raise ProtocolError(
            Reason.BAD_FIELD, f"bad base64 in an MQTT password hash: {exc}"
        ) from None
    return PasswordHash(int(match.group(1)), salt, key)


def verify(password: str, text: str) -> bool:
    """Whether `password` matches the `$7$` hash `text` (constant-time comparison)."""
    stored = parse(text)
    candidate = derive(password, stored.salt, stored.iterations)
    return hmac.compare_digest(candidate.key, stored.key)


def new_secret(rand: Callable[[int], bytes] = os.urandom) -> str:
    """A new account secret: 32 random bytes as unpadded base64url (43 characters, no `:`)."""
    return base64.urlsafe_b64encode(rand(SECRET_BYTES)).rstrip(b"=").decode()

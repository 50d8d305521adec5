"""The firmware's sealed-box opener (firmware/lib/sealedbox.py) against libsodium (PyNaCl): what
the bridge seals to a device after a claim (protocol/claims.py seal_credentials) opens on the
board with the board's own code, in CPython and in the MicroPython unix port; a box sealed to
another key or altered by one bit is refused."""

from __future__ import annotations

import hashlib
import time

import nacl.bindings
import nacl.public
import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.provision_esp32 import firmware_module
from protocol import claims as pc
from tests.firmware.conftest import MicroPython

sb = firmware_module("sealedbox")


def sealed_to(key: nacl.signing.SigningKey, plain: bytes) -> bytes:
    return bytes(nacl.public.SealedBox(key.verify_key.to_curve25519_public_key()).encrypt(plain))


@settings(max_examples=25, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(max_size=300))
def test_opens_what_libsodium_seals(seed: bytes, plain: bytes) -> None:
    key = nacl.signing.SigningKey(seed)
    pub = bytes(key.verify_key)
    assert sb.curve_public(pub) == nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(pub)
    assert sb.curve_secret(seed) == bytes(key.to_curve25519_private_key())
    assert sb.open_sealed(sealed_to(key, plain), seed, pub) == plain


@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=400), st.sampled_from([1, 20, 24, 32, 64]))
def test_blake2b_matches_hashlib(data: bytes, size: int) -> None:
    assert sb.blake2b(data, size) == hashlib.blake2b(data, digest_size=size).digest()


def test_refuses_another_key_and_any_flipped_bit() -> None:
    key = nacl.signing.SigningKey(bytes(range(32)))
    other = nacl.signing.SigningKey(bytes(range(1, 33)))
    data = sealed_to(key, b"broker password")
    with pytest.raises(ValueError, match="does not verify"):
        sb.open_sealed(data, bytes(other), bytes(other.verify_key))
    for i in (0, 31, 32, 47, 48, len(data) - 1):  # the key, the tag, the text
        bad = bytearray(data)
        bad[i] ^= 1
        with pytest.raises(ValueError):
            sb.open_sealed(bytes(bad), bytes(key), bytes(key.verify_key))
    with pytest.raises(ValueError, match="shorter"):
        sb.open_sealed(data[:47], bytes(key), bytes(key.verify_key))
    # an ephemeral key of low order makes a shared secret anyone knows: refused, as by libsodium
    with pytest.raises(ValueError, match="low-order"):
        sb.open_sealed(bytes(32) + data[32:], bytes(key), bytes(key.verify_key))


def test_the_bridge_credentials_open_in_micropython(micropython: MicroPython) -> None:
    # The real thing the bridge sends (protocol.claims.seal_credentials), opened by the unix
    # port with the firmware's code; the time is printed for the record, not asserted.
    key = nacl.signing.SigningKey(bytes(range(7, 39)))
    creds = pc.Credentials(username="esp32-claim-1", password="p" * 43)
    data = pc.seal_credentials(creds, bytes(key.verify_key))
    started = time.monotonic()
    out = micropython.code(
        "import sealedbox, cbor\n"
        f"plain = sealedbox.open_sealed({data!r}, {bytes(key)!r}, {bytes(key.verify_key)!r})\n"
        "doc = cbor.decode(plain)\n"
        "print(sorted(doc.items()))\n"
    )
    print(f"sealed box opened in MicroPython (unix port, with start-up): "
          f"{time.monotonic() - started:.2f} s")  # fmt: skip
    assert out.strip() == str(sorted(creds.to_map().items()))

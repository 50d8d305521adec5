"""The firmware's SHA-512 and Ed25519 in real MicroPython against CPython's hashlib and PyNaCl
(libsodium) on inputs neither was written for: random seeds and messages of every length
across SHA-512's padding boundaries."""

from __future__ import annotations

import hashlib
import random

import nacl.signing

from tests.firmware.conftest import MicroPython

SHA_SCRIPT = """
import sha512
data = bytes(range(256)) * 2
for n in range(300):
    print(sha512.sha512(data[:n]).hex())
"""


def test_sha512_equals_hashlib_for_every_length_up_to_300(micropython: MicroPython) -> None:
    data = bytes(range(256)) * 2
    got = micropython.code(SHA_SCRIPT, heapsize="48k").split()
    assert got == [hashlib.sha512(data[:n]).hexdigest() for n in range(300)]


SIGN_SCRIPT = """
import ed25519
for line in open(%r):
    seed, message = line.split(",")
    key = ed25519.SigningKey(bytes.fromhex(seed))
    message = bytes.fromhex(message.strip())
    signature = key.sign(message)
    print(key.public.hex(), signature.hex(), ed25519.verify(key.public, message, signature))
"""


def test_ed25519_equals_libsodium_on_random_keys_and_messages(
    micropython: MicroPython, tmp_path
) -> None:
    rng = random.Random(20261201)
    cases = [(rng.randbytes(32), rng.randbytes(rng.randrange(0, 300))) for _ in range(40)]
    cases_file = tmp_path / "cases.csv"
    cases_file.write_text("".join(f"{s.hex()},{m.hex()}\n" for s, m in cases))
    out = micropython.code(SIGN_SCRIPT % str(cases_file), heapsize="64k").splitlines()
    assert len(out) == len(cases)
    for (seed, message), line in zip(cases, out, strict=True):
        public, signature, verified = line.split()
        key = nacl.signing.SigningKey(seed)
        assert public == bytes(key.verify_key).hex()
        assert signature == key.sign(message).signature.hex()
        assert verified == "True"


VERIFY_SCRIPT = """
import ed25519
for line in open(%r):
    public, message, signature = [bytes.fromhex(f) for f in line.strip().split(",")]
    print(ed25519.verify(public, message, signature))
"""


def test_ed25519_verify_accepts_libsodium_signatures_and_refuses_altered_ones(
    micropython: MicroPython, tmp_path
) -> None:
    rng = random.Random(7)
    rows, expected = [], []
    for i in range(24):
        key = nacl.signing.SigningKey(rng.randbytes(32))
        message = rng.randbytes(rng.randrange(1, 200))
        signature = bytearray(key.sign(message).signature)
        if i % 3 == 1:
            signature[rng.randrange(64)] ^= 1 << rng.randrange(8)
        elif i % 3 == 2:
            message = message[:-1] + bytes([message[-1] ^ 0x80])
        rows.append(f"{bytes(key.verify_key).hex()},{message.hex()},{bytes(signature).hex()}")
        expected.append(str(i % 3 == 0))
    cases_file = tmp_path / "verify.csv"
    cases_file.write_text("\n".join(rows) + "\n")
    out = micropython.code(VERIFY_SCRIPT % str(cases_file), heapsize="64k").split()
    assert out == expected

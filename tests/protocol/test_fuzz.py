"""10,000 random and mutated inputs to verify1 and messages.decode: only ProtocolError comes out.

Seeded, so any failure replays: the seed and the input are in the assertion message.
"""

from __future__ import annotations

import random

import cbor2
import nacl.signing

from protocol import cose, envelope
from protocol import messages as m
from protocol.errors import ProtocolError

KEY = nacl.signing.SigningKey(bytes(range(32)))
KID = cose.kid_for(KEY.verify_key)
SEED = 20261128
TOTAL = 10_000


def _resolve(kid: bytes) -> nacl.signing.VerifyKey | None:
    return KEY.verify_key if kid == KID else None


def _seeds() -> list[bytes]:
    report = m.Report(
        sender="d",
        seq=1,
        boot=1,
        ts_ms=1,
        model_id="risk-v1",
        model_sha256=bytes(32),
        risk_pm=5,
        features=b"\x01\x02",
        fingerprint={1: 2},
        mono_ms=9,
        telemetry={"steps": 1},
    )
    trigger = m.Trigger(
        sender="d",
        seq=2,
        boot=1,
        ts_ms=1,
        model_id="m",
        model_sha256=bytes(32),
        risk_pm=5,
        mono_ms=9,
        rule="r",
        priority=1,
        body=m.EmergencyBody(emergency="illness", source="explicit", amount_fen=9),
    )
    payloads = [m.encode(report), m.encode(trigger)]
    return [*payloads, envelope.seal(report, KEY), envelope.seal(trigger, KEY)]


def _mutate(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        if op == 0 and buf:  # flip a bit
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:  # set a byte to a CBOR-interesting value
            buf[rng.randrange(len(buf))] = rng.choice(
                [
                    0x00,
                    0x17,
                    0x18,
                    0x1B,
                    0x3B,
                    0x5B,
                    0x7B,
                    0x9B,
                    0x9F,
                    0xBB,
                    0xBF,
                    0xC2,
                    0xD2,
                    0xD8,
                    0xF7,
                    0xF9,
                    0xFB,
                    0xFF,
                ]
            )
        elif op == 2 and buf:  # truncate
            del buf[rng.randrange(len(buf)) :]
        elif op == 3:  # insert random bytes
            i = rng.randrange(len(buf) + 1)
            buf[i:i] = rng.randbytes(rng.randint(1, 8))
        elif op == 4 and buf:  # delete a span
            i = rng.randrange(len(buf))
            del buf[i : i + rng.randint(1, 8)]
        elif op == 5:  # splice in part of another seed
            other = rng.choice(pool)
            i, j = sorted(rng.randrange(len(other) + 1) for _ in range(2))
            k = rng.randrange(len(buf) + 1)
            buf[k:k] = other[i:j]
        else:  # duplicate a span
            if buf:
                i = rng.randrange(len(buf))
                buf[i:i] = buf[i : i + rng.randint(1, 16)]
    return bytes(buf)


def _inputs(rng: random.Random) -> list[bytes]:
    pool = _seeds()
    nested = [cbor2.dumps(cbor2.CBORTag(18, [b"", {}, b"", b""]))]
    out: list[bytes] = []
    while len(out) < TOTAL:
        choice = rng.random()
        if choice < 0.15:
            out.append(rng.randbytes(rng.randint(0, 200)))
        elif choice < 0.2:
            out.append(_mutate(rng, rng.choice(nested), pool))
        else:
            out.append(_mutate(rng, rng.choice(pool), pool))
    return out


def test_fuzz__only_protocol_errors() -> None:
    rng = random.Random(SEED)
    inputs = _inputs(rng)
    assert len(inputs) == TOTAL
    accepted = 0
    for i, data in enumerate(inputs):
        for target in (lambda d: cose.verify1(d, _resolve), m.decode):
            try:
                target(data)
                accepted += 1
            except ProtocolError:
                pass
            except Exception as exc:  # pragma: no cover - this is the failure being hunted
                raise AssertionError(
                    f"seed {SEED} input {i} ({data.hex()}) raised {exc!r}"
                ) from exc
    # Mutations that keep a message valid exist (unknown keys, re-encodings), but they are rare.
    assert accepted < TOTAL

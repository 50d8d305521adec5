"""10,000 random and mutated inputs to verify1 and messages.decode: only ProtocolError comes out.

Seeded, so any failure replays: the seed and the input are in the assertion message.
"""

from __future__ import annotations

import random

import cbor2
import nacl.signing
from hypothesis import given, settings
from hypothesis import strategies as st

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


# ---- structure-aware: right keys, wrong shapes -----------------------------------------------


_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(1 << 65), 1 << 65),
    st.floats(allow_nan=True),
    st.text(max_size=5),
    st.binary(max_size=5),
)
_value = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.integers(0, 30), st.text(max_size=3)), inner, max_size=3),
    ),
    max_leaves=6,
)


@settings(max_examples=400, deadline=None)
@given(
    kind=st.one_of(st.sampled_from([k.value for k in m.Kind]), _value),
    fields=st.dictionaries(st.integers(0, 23), _value, max_size=12),
    odd_key=st.sampled_from([None, 0.0, True, "x", b"k"]),
)
def test_fuzz__known_keys_with_any_shape_raise_only_protocol_errors(
    kind: object, fields: dict[int, object], odd_key: object
) -> None:
    data: dict[object, object] = {0: 1, 1: kind, **fields}
    if odd_key is not None:
        data[odd_key] = 1
    try:
        payload = cbor2.dumps(data, canonical=True)
    except (TypeError, ValueError, cbor2.CBOREncodeError):
        return  # not encodable at all: nothing to decode
    try:
        message = m.decode(payload)
    except ProtocolError:
        return  # the only refusal there may be
    assert m.decode(m.encode(message)) == message  # whatever is accepted is a valid message

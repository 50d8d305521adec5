"""Protocol suite: encode, sign and verify rates of the wire contract, beside bare PyNaCl."""

from __future__ import annotations

import time

import nacl.signing

from protocol import cose, envelope
from protocol import messages as m
from tools.bench.common import Context, Figure


def _rate(fn, seconds: float) -> float:
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(200):
            fn()
        n += 200
    return n / elapsed


def run(ctx: Context) -> list[Figure]:
    seconds = 0.5 if ctx.quick else 2.0
    key = nacl.signing.SigningKey(bytes(range(32)))
    kid = cose.kid_for(key.verify_key)
    report = m.Report(
        sender="bench-1",
        seq=1,
        boot=1,
        ts_ms=1,
        model_id="risk-v1",
        model_sha256=bytes(32),
        risk_pm=17,
        features=bytes(24),
        mono_ms=1,
        fingerprint={i: i * 100 for i in range(12)},
        telemetry={"steps": 1},
    )
    payload = m.encode(report)
    sealed = envelope.seal(report, key)
    sig_input = cose.sig_structure(cose.cbor.dumps({1: -8, 4: kid}), payload)
    signature = key.sign(sig_input).signature

    def resolve(_kid: bytes) -> nacl.signing.VerifyKey:
        return key.verify_key

    ctx.progress("bare PyNaCl verify")
    bare = _rate(lambda: key.verify_key.verify(sig_input, signature), seconds)
    ctx.progress("unseal (verify1 + decode)")
    full = _rate(lambda: envelope.unseal(sealed, resolve), seconds)
    ctx.progress("seal (encode + sign1)")
    seal = _rate(lambda: envelope.seal(report, key), seconds)
    return [
        Figure("protocol", "PyNaCl Ed25519 verify", bare, "ops/s", note="bare, one core"),
        Figure(
            "protocol",
            "unseal report (COSE verify + decode)",
            full,
            "ops/s",
            peer=f"{full / bare:.2f} of bare verify",
        ),
        Figure("protocol", "seal report (encode + COSE sign)", seal, "ops/s"),
        Figure("protocol", "report envelope size", len(sealed), "bytes"),
    ]

"""Shared vectors: RFC 8949 appendix A, RFC 8032 section 7.1, and this project's own."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import cbor2
import nacl.signing
import pytest

from protocol import cbor, cose, envelope
from protocol import messages as m
from protocol.errors import ProtocolError, Reason
from tests.harness.independent import pycose_verify
from tools.typed_json import from_typed, to_typed

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
APPENDIX_A = json.loads((VECTORS / "rfc8949_appendix_a.json").read_text())["vectors"]
RFC8032 = json.loads((VECTORS / "rfc8032_ed25519.json").read_text())["vectors"]
PROJECT = json.loads((VECTORS / "project.json").read_text())


def _from_cbor2(value: Any) -> Any:
    """cbor2's decoding in the notation of from_typed."""
    if isinstance(value, cbor2.CBORTag):
        return ("tag", value.tag, _from_cbor2(value.value))
    if isinstance(value, cbor2.CBORSimpleValue):
        return ("simple", value.value)
    if value is cbor2.undefined:
        return ("undefined",)
    if isinstance(value, list | tuple):
        return [_from_cbor2(v) for v in value]
    if isinstance(value, dict):
        return {
            (tuple(k) if isinstance(k, list | tuple) else k): _from_cbor2(v)
            for k, v in value.items()
        }
    return value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


# Tags 0 and 1 are decoded by cbor2 into datetimes, 2 and 3 into ints (the expected bignums).
SEMANTIC = {"c074323031332d30332d32315432303a30343a30305a", "c11a514b67b0", "c1fb41d452d9ec200000"}


@pytest.mark.parametrize("vector", APPENDIX_A, ids=lambda v: v["hex"])
def test_rfc8949_appendix_a__cbor2_decodes_and_encodes(vector: dict[str, Any]) -> None:
    data = bytes.fromhex(vector["hex"])
    expected = from_typed(vector["value"])
    if vector["hex"] not in SEMANTIC:
        assert _same(_from_cbor2(cbor2.loads(data)), expected)
    if vector["deterministic"] and vector["hex"] not in SEMANTIC:
        plain = cbor2.loads(data)
        assert cbor2.dumps(plain, canonical=True) == data


PLAIN_KINDS = {"int", "bytes", "text", "array", "map", "bool", "null"}


def _is_plain(node: dict[str, Any]) -> bool:
    kind = next(iter(node))
    if kind not in PLAIN_KINDS:
        return False
    if kind == "array":
        return all(_is_plain(v) for v in node["array"])
    if kind == "map":
        return all(_is_plain(k) and _is_plain(v) for k, v in node["map"])
    return True


@pytest.mark.parametrize("vector", APPENDIX_A, ids=lambda v: v["hex"])
def test_rfc8949_appendix_a__strict_loader_takes_the_plain_model_only(
    vector: dict[str, Any],
) -> None:
    data = bytes.fromhex(vector["hex"])
    # In this appendix only indefinite lengths make a plain value's encoding not deterministic.
    if _is_plain(vector["value"]) and vector["deterministic"]:
        assert _same(cbor.loads(data), from_typed(vector["value"]))
        assert cbor.dumps(cbor.loads(data)) == data
    else:  # floats, tags, simple values, undefined, bignums, indefinite lengths: not ours
        with pytest.raises(ProtocolError) as err:
            cbor.loads(data)
        assert err.value.reason is Reason.BAD_CBOR


@pytest.mark.parametrize("vector", RFC8032, ids=lambda v: v["name"])
def test_rfc8032_ed25519(vector: dict[str, str]) -> None:
    key = nacl.signing.SigningKey(bytes.fromhex(vector["secret_key"]))
    assert bytes(key.verify_key).hex() == vector["public_key"]
    message = bytes.fromhex(vector["message"])
    assert key.sign(message).signature.hex() == vector["signature"]
    key.verify_key.verify(message, bytes.fromhex(vector["signature"]))


KEY = nacl.signing.SigningKey(bytes.fromhex(PROJECT["key"]["seed"]))


def _resolve(kid: bytes) -> nacl.signing.VerifyKey | None:
    return KEY.verify_key if kid == bytes.fromhex(PROJECT["key"]["kid"]) else None


def test_project_vectors__key_and_raw_envelopes() -> None:
    assert bytes(KEY.verify_key).hex() == PROJECT["key"]["public"]
    assert cose.kid_for(KEY.verify_key).hex() == PROJECT["key"]["kid"]
    for vec in PROJECT["cose"]:
        payload = bytes.fromhex(vec["payload"])
        assert cose.sign1(payload, KEY, cose.kid_for(KEY.verify_key)).hex() == vec["envelope"]
        assert cose.verify1(bytes.fromhex(vec["envelope"]), _resolve).payload == payload


@pytest.mark.parametrize("vec", PROJECT["messages"], ids=lambda v: v["name"])
def test_project_vectors__messages(vec: dict[str, Any]) -> None:
    payload = bytes.fromhex(vec["payload"])
    # The typed map, encoded by cbor2 directly, gives the same bytes (deterministic encoding).
    assert cbor2.dumps(from_typed(vec["map"]), canonical=True) == payload
    msg = m.decode(payload)
    assert type(msg).__name__ == vec["kind"]
    assert m.encode(msg) == payload
    assert envelope.seal(msg, KEY).hex() == vec["envelope"]
    assert envelope.unseal(bytes.fromhex(vec["envelope"]), _resolve)[1] == msg
    assert to_typed(dict(sorted(msg.to_map().items()))) == vec["map"]


def test_project_vectors__verify_with_pycose() -> None:
    envelopes = [bytes.fromhex(v["envelope"]) for v in PROJECT["cose"] + PROJECT["messages"]]
    results = pycose_verify([(bytes(KEY.verify_key), e) for e in envelopes])
    assert [r["ok"] for r in results] == [True] * len(envelopes)
    payloads = [v["payload"] for v in PROJECT["cose"] + PROJECT["messages"]]
    assert [r["payload"] for r in results] == payloads
    assert {r["kid"] for r in results} == {PROJECT["key"]["kid"]}


@pytest.mark.parametrize("vec", PROJECT["legacy"], ids=lambda v: v["name"])
def test_project_vectors__legacy_reports_still_read(vec: dict[str, str]) -> None:
    """Reports as devices before the packed fingerprint wrote them (a map under key 14, all 32
    bytes of model_sha256): the same report as the current vector, the prefix aside."""
    current = next(v for v in PROJECT["messages"] if v["name"] == vec["same_as"])
    new = m.decode(bytes.fromhex(current["payload"]))
    sealed = bytes.fromhex(vec["envelope"])
    old = envelope.unseal(sealed, _resolve)[1]
    assert cose.verify1(sealed, _resolve).payload.hex() == vec["payload"] != current["payload"]
    assert isinstance(old, m.Report) and isinstance(new, m.Report)
    assert cbor2.loads(bytes.fromhex(vec["payload"]))[14] == new.fingerprint
    assert len(old.model_sha256) == 32 and old.model_sha256.startswith(new.model_sha256)
    assert dataclasses.replace(old, model_sha256=new.model_sha256) == new


@pytest.mark.parametrize("vec", PROJECT["refused"], ids=lambda v: v["name"])
def test_project_vectors__refused_payloads(vec: dict[str, str]) -> None:
    """NaN, undefined, tags and indefinite lengths (RFC 8949 appendix A encodings) under a key
    the reader does not know, or an indefinite-length text under one it does: refused as
    bad_cbor although the envelope's signature verifies. firmware/tests/test_cose.py holds the
    device to the same vectors."""
    payload, sealed = bytes.fromhex(vec["payload"]), bytes.fromhex(vec["envelope"])
    assert cose.verify1(sealed, _resolve).payload == payload
    for refuse in (lambda: m.decode(payload), lambda: envelope.unseal(sealed, _resolve)):
        with pytest.raises(ProtocolError) as err:
            refuse()
        assert err.value.reason is Reason(vec["reason"]) is Reason.BAD_CBOR


def test_project_vectors__refused_cover_every_outside_item() -> None:
    names = {v["name"] for v in PROJECT["refused"]}
    for item in ("nan-half", "nan-double", "undefined", "tag-bignum", "indefinite-text"):
        assert {f"ack-{item}-under-unknown-key", f"bridge-state-{item}-under-unknown-key"} <= names
    assert "ack-indefinite-device" in names

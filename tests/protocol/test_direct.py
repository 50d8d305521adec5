"""protocol.direct and cose.Signer write the same bytes as messages.encode and cose.sign1."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import cose, direct
from protocol import messages as m
from protocol.errors import ProtocolError
from tests.harness.independent import pycose_verify
from tests.protocol.strategies import record

PROJECT = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "project.json").read_text())
PROJECT_KEY = nacl.signing.SigningKey(bytes.fromhex(PROJECT["key"]["seed"]))
KEY = nacl.signing.SigningKey(bytes(range(32)))

WRITERS: dict[type[m.Message], Callable[..., bytes]] = {
    m.Ack: direct.ack,
    m.Decision: direct.decision,
    m.PoolState: direct.pool_state,
    m.Risk: direct.risk,
}


def _fields(message: m.Message) -> dict[str, Any]:
    return {f.name: getattr(message, f.name) for f in dataclasses.fields(message)}


@pytest.mark.parametrize("cls", list(WRITERS), ids=lambda c: c.__name__)
@settings(max_examples=300)
@given(data=st.data())
def test_direct_payload_is_what_encode_writes(cls: type[m.Message], data: st.DataObject) -> None:
    message = data.draw(record(cls))
    assert WRITERS[cls](**_fields(message)) == m.encode(message)


@settings(max_examples=300)
@given(
    amount_fen=st.sampled_from([0, 1, -1, 23, 24, -24, -25, 255, 256, 65_535, 65_536, -(2**63)])
    | st.integers(-(2**63), 2**63 - 1),
    reasons=st.lists(st.text(max_size=64), max_size=16),
    received_ms=st.sampled_from([0, 23, 24, 2**32 - 1, 2**32, 2**64 - 1]),
)
def test_decision_optional_fields_and_boundaries(
    amount_fen: int, reasons: list[str], received_ms: int
) -> None:
    message = m.Decision(
        sender="bridge-1", seq=24, boot=255, ts_ms=1_764_288_000_000, user="u-1",
        device="rig-07", device_seq=65_536, decision="hold", action="none", result="",
        amount_fen=amount_fen, reasons=tuple(reasons), received_ms=received_ms,
    )  # fmt: skip
    assert direct.decision(**_fields(message)) == m.encode(message)


def test_optional_fields_at_their_default_are_left_out() -> None:
    fields = {"sender": "b", "seq": 1, "boot": 1, "ts_ms": 1, "user": "u", "device": "d"}
    fields |= {"device_seq": 1, "decision": "allow", "action": "none", "result": "ok"}
    assert direct.decision(**fields)[0] == 0xA0 | 12  # a map of the 12 required keys


@pytest.mark.parametrize(
    "vector",
    [v for v in PROJECT["messages"] if getattr(m, v["kind"]) in WRITERS],
    ids=lambda v: v["name"],
)
def test_project_vectors(vector: dict[str, Any]) -> None:
    payload = bytes.fromhex(vector["payload"])
    message = m.decode(payload)
    written = WRITERS[type(message)](**_fields(message))
    assert written == payload
    assert cose.Signer(PROJECT_KEY).sign1(written) == bytes.fromhex(vector["envelope"])


@given(st.binary(max_size=600))
def test_signer_is_sign1(payload: bytes) -> None:
    kid = cose.kid_for(KEY.verify_key)
    assert cose.Signer(KEY).sign1(payload) == cose.sign1(payload, KEY, kid)
    assert cose.Signer(KEY, b"k" * 40).sign1(payload) == cose.sign1(payload, KEY, b"k" * 40)


def test_signer_refuses_a_bad_kid() -> None:
    with pytest.raises(ProtocolError):
        cose.Signer(KEY, b"")


def test_pycose_verifies_what_the_signer_makes() -> None:
    signer = cose.Signer(KEY)
    payloads = [
        direct.ack(sender="bridge-1", seq=7, boot=2, ts_ms=1, device="rig-07", ack_seq=70_000),
        b"",
        b"x" * 300,
    ]
    results = pycose_verify([(bytes(KEY.verify_key), signer.sign1(p)) for p in payloads])
    assert [r["ok"] for r in results] == [True] * len(payloads)
    assert [bytes.fromhex(str(r["payload"])) for r in results] == payloads
    assert [r["kid"] for r in results] == [signer.kid.hex()] * len(payloads)

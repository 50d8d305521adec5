from __future__ import annotations

import dataclasses

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import messages as m
from protocol.errors import ProtocolError, Reason
from tests.protocol.strategies import any_message

SHA = bytes(range(32))


def report(**over: object) -> m.Report:
    fields: dict[str, object] = dict(
        sender="dev-1",
        seq=7,
        boot=3,
        ts_ms=1_700_000_000_000,
        model_id="risk-v1",
        model_sha256=SHA,
        risk_pm=42,
        features=b"\x01\xff",
        mono_ms=123_456,
    )
    fields.update(over)
    return m.Report(**fields)  # type: ignore[arg-type]


@given(any_message)
def test_every_message_round_trips(message: m.Message) -> None:
    data = m.encode(message)
    assert m.decode(data) == message
    assert m.encode(m.decode(data)) == data  # deterministic: one encoding per message


@given(any_message)
def test_encoding_is_rfc8949_deterministic(message: m.Message) -> None:
    data = m.encode(message)
    # Map keys in bytewise order of their encodings (RFC 8949 section 4.2.1), definite lengths.
    decoded = cbor2.loads(data)
    keys = [cbor2.dumps(k) for k in decoded]
    assert keys == sorted(keys)
    assert b"\x9f" not in data[:1] and b"\xbf" not in data[:1]


@given(any_message, st.integers(1, (1 << 63) - 1))
def test_with_seq_equals_encoding_with_that_seq(message: m.Message, seq: int) -> None:
    base = m.encode(dataclasses.replace(message, seq=0))
    assert m.with_seq(base, seq) == m.encode(dataclasses.replace(message, seq=seq))


def test_with_seq_refuses_what_it_cannot_patch() -> None:
    with pytest.raises(ProtocolError):
        m.with_seq(m.encode(report(seq=5)), 6)  # seq is not 0
    with pytest.raises(ProtocolError):
        m.with_seq(b"\x83\x01\x02\x03", 6)


def test_header_keys_on_the_wire() -> None:
    decoded = cbor2.loads(m.encode(report()))
    assert decoded[0] == 1 and decoded[1] == 3
    assert (decoded[2], decoded[3], decoded[4], decoded[5]) == ("dev-1", 7, 3, 1_700_000_000_000)
    assert 17 not in decoded and 18 not in decoded  # optional fields at their default are omitted


def test_unknown_keys_are_ignored() -> None:
    data = cbor2.loads(m.encode(report()))
    data[30] = "from a newer minor revision"
    data[9] = [1, 2, 3]
    assert m.decode(cbor2.dumps(data, canonical=True)) == report()


# RFC 8949 appendix A encodings of items the contract excludes (docs/protocol.md section 3)
OUTSIDE = {
    "NaN": "f97e00",
    "-Infinity": "f9fc00",
    "1.1": "fb3ff199999999999a",
    "undefined": "f7",
    "simple(16)": "f0",
    "tag 1 (epoch time)": "c11a514b67b0",
    "bignum 2**64": "c249010000000000000000",
    "tag 32 (URI)": "d82076687474703a2f2f7777772e6578616d706c652e636f6d",
    "[_ ]": "9fff",
    '(_ "strea", "ming")': "7f657374726561646d696e67ff",
    '{_ "a": 1, "b": [_ 2, 3]}': "bf61610161629f0203ffff",
}


def _with_raw(item: bytes) -> bytes:
    """A report's payload with one more entry: key 24, unknown to version 1, holding the raw
    CBOR `item` (deterministic order puts key 24 last)."""
    data = cbor2.loads(m.encode(report()))
    data[24] = 0
    encoded = cbor2.dumps(data, canonical=True)
    assert encoded.endswith(b"\x18\x18\x00")
    return encoded[:-1] + item


@pytest.mark.parametrize("item", OUTSIDE.values(), ids=list(OUTSIDE))
def test_decode__items_outside_the_contract_under_unknown_keys_are_refused(item: str) -> None:
    raw = bytes.fromhex(item)
    with pytest.raises(ProtocolError) as err:
        m.decode(_with_raw(raw))
    assert err.value.reason is Reason.BAD_CBOR
    # nested in a plain value under an unknown key, too
    with pytest.raises(ProtocolError) as err:
        m.decode(_with_raw(b"\x82\x01" + raw))  # [1, item]
    assert err.value.reason is Reason.BAD_CBOR
    assert m.decode(_with_raw(b"\x82\x01\x02")) == report()  # [1, 2] is fine


@pytest.mark.parametrize("item", OUTSIDE.values(), ids=list(OUTSIDE))
def test_decode__items_outside_the_contract_in_a_trigger_body_are_refused(item: str) -> None:
    trig = m.Trigger(
        sender="wear-1", seq=1, boot=1, ts_ms=1, model_id="risk-v1", model_sha256=SHA,
        risk_pm=3, mono_ms=10, rule="fall", priority=255,
        body=m.EmergencyBody(emergency="illness", source="fall"),
    )  # fmt: skip
    payload = m.encode(trig)
    body = cbor2.dumps({1: "illness", 2: "fall"}, canonical=True)
    assert payload.count(b"\x14" + body) == 1  # key 20, the body
    grown = b"\xa3" + body[1:] + b"\x17" + bytes.fromhex(item)  # key 23 of the body
    with pytest.raises(ProtocolError) as err:
        m.decode(payload.replace(b"\x14" + body, b"\x14" + grown))
    assert err.value.reason is Reason.BAD_CBOR
    plain = b"\xa3" + body[1:] + b"\x17\x01"
    assert m.decode(payload.replace(b"\x14" + body, b"\x14" + plain)) == trig


def _with(change: dict[int, object], drop: tuple[int, ...] = ()) -> bytes:
    data = cbor2.loads(m.encode(report()))
    data.update(change)
    for key in drop:
        data.pop(key)
    return cbor2.dumps(data, canonical=True)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", Reason.BAD_CBOR),
        (b"\xa1\x01", Reason.BAD_CBOR),  # truncated
        (m.encode(report()) + b"\x00", Reason.BAD_CBOR),  # trailing byte
        (b"\xa2\x00\x01\x00\x01", Reason.BAD_CBOR),  # duplicate key
        (b"\x83\x01\x02\x03", Reason.NOT_A_MAP),
        (b"\x01", Reason.NOT_A_MAP),
        (_with({}, drop=(0,)), Reason.MISSING_FIELD),
        (_with({}, drop=(1,)), Reason.MISSING_FIELD),
        (_with({}, drop=(12,)), Reason.MISSING_FIELD),
        (_with({0: 2}), Reason.UNSUPPORTED_VERSION),
        (_with({0: 0}), Reason.UNSUPPORTED_VERSION),
        (_with({0: "1"}), Reason.BAD_FIELD),
        (_with({1: 99}), Reason.UNKNOWN_KIND),
        (_with({1: True}), Reason.UNKNOWN_KIND),
        (_with({12: 1001}), Reason.BAD_FIELD),
        (_with({12: -1}), Reason.BAD_FIELD),
        (_with({12: 4.5}), Reason.BAD_FIELD),  # floats are not part of the contract
        (_with({12: True}), Reason.BAD_FIELD),
        (_with({2: "has/slash"}), Reason.BAD_FIELD),
        (_with({11: b"short"}), Reason.BAD_FIELD),
        (_with({3: 1 << 63}), Reason.BAD_FIELD),
        (_with({14: {99: 1}}), Reason.BAD_FIELD),
        (_with({16: {"ok": "not an int"}}), Reason.BAD_FIELD),
        (_with({13: cbor2.CBORTag(1, 5)}), Reason.BAD_FIELD),  # a tag (date) is no bstr
        (b"\xa1\x00" + b"\x5a\x00\x00\x10\x00" + b"\x00" * 4096, Reason.OVERSIZE),
    ],
)
def test_decode__rejections(payload: bytes, reason: Reason) -> None:
    with pytest.raises(ProtocolError) as err:
        m.decode(payload)
    assert err.value.reason is reason


def test_decode__4_kib_is_the_limit() -> None:
    text = "x" * (4096 - 12)
    blob = cbor2.dumps({0: 1, 99: text}, canonical=True)
    assert len(blob) <= 4096
    with pytest.raises(ProtocolError) as err:
        m.decode(blob)
    assert err.value.reason is Reason.MISSING_FIELD  # size passed, schema checked
    with pytest.raises(ProtocolError) as err:
        m.decode(cbor2.dumps({0: 1, 99: text + "x" * 64}, canonical=True))
    assert err.value.reason is Reason.OVERSIZE


def test_trigger_body_follows_the_trigger_kind() -> None:
    trig = m.Trigger(
        sender="fridge-1",
        seq=1,
        boot=1,
        ts_ms=1,
        model_id="risk-v1",
        model_sha256=SHA,
        risk_pm=3,
        mono_ms=10,
        rule="milk-low",
        priority=5,
        body=m.RestockBody(item="milk", level_pct=10, threshold_pct=25, est_cost_fen=1_290),
    )
    raw = cbor2.loads(m.encode(trig))
    assert raw[17] == "restock" and raw[20] == {1: "milk", 2: 10, 3: 25, 4: 1290}
    raw[17] = "emergency"  # same body, other kind: its fields no longer fit
    with pytest.raises(ProtocolError) as err:
        m.decode(cbor2.dumps(raw, canonical=True))
    assert err.value.reason is Reason.BAD_FIELD
    raw[17] = "lottery"
    with pytest.raises(ProtocolError) as err:
        m.decode(cbor2.dumps(raw, canonical=True))
    assert err.value.reason is Reason.BAD_FIELD


def test_construction_validates() -> None:
    with pytest.raises(ProtocolError) as err:
        report(risk_pm=5000)
    assert err.value.reason is Reason.BAD_FIELD
    with pytest.raises(ProtocolError):
        m.EmergencyBody(emergency="lottery", source="explicit")


def test_encode__refuses_oversize() -> None:
    big = m.Command(
        sender="bridge-1",
        seq=1,
        boot=1,
        ts_ms=1,
        device="d",
        command="config",
        args={f"k{i}": bytes(1024) for i in range(5)},
    )
    with pytest.raises(ProtocolError) as err:
        m.encode(big)
    assert err.value.reason is Reason.OVERSIZE


def test_decode_as__wrong_kind() -> None:
    with pytest.raises(ProtocolError) as err:
        m.decode_as(m.encode(report()), m.Trigger)
    assert err.value.reason is Reason.TOPIC_MISMATCH
    assert m.decode_as(m.encode(report()), m.Report) == report()

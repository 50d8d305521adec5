"""The packed fingerprint (protocol.packed, key 14 of a report): exact bytes, one form per map,
refusals with a reason, and reports of devices older than the packed form still read."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import messages as m
from protocol import packed
from protocol.errors import ProtocolError, Reason

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
SHA = bytes(range(32))


def report(**over: object) -> m.Report:
    fields: dict[str, object] = dict(
        sender="dev-1", seq=7, boot=3, ts_ms=1_700_000_000_000, model_id="risk-v1",
        model_sha256=SHA, risk_pm=42, features=b"\x01\xff", mono_ms=123_456,
    )  # fmt: skip
    fields.update(over)
    return m.Report(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("values", "wire"),
    [
        ({0: 0}, "01"),  # all zero: only the count
        ({0: 1, 1: -1, 2: 0}, "030201"),  # zigzag 1 -> 2, -1 -> 1; the trailing 0 left out
        ({0: 0, 1: 5}, "02000a"),  # a zero before a nonzero value is written
        ({0: 63, 1: 64, 2: -64, 3: -65}, "047e80017f8101"),  # one byte up to 63 and -64
        ({0: 992_313}, "01f29079"),  # zigzag 1_984_626: 7-bit groups 0x72 0x10 0x79
        ({0: INT64_MAX}, "01feffffffffffffffff01"),
        ({0: INT64_MIN}, "01ffffffffffffffffff01"),
    ],
)
def test_pack__exact_bytes(values: dict[int, int], wire: str) -> None:
    assert packed.pack(values).hex() == wire
    assert packed.unpack(bytes.fromhex(wire), 24) == values


@given(st.lists(st.integers(INT64_MIN, INT64_MAX) | st.just(0), min_size=1, max_size=24))
def test_pack__round_trips(values: list[int]) -> None:
    as_map = dict(enumerate(values))
    data = packed.pack(as_map)
    assert packed.unpack(data, 24) == as_map
    assert data[0] == len(values)


@pytest.mark.parametrize(
    ("wire", "problem"),
    [
        ("", "key count"),
        ("00", "key count"),
        ("19", "key count"),  # 25 keys: more than a fingerprint has
        ("0180", "truncated"),
        ("01" + "80" * 10 + "01", "over-long"),
        ("018000", "shortest form"),  # 0 written in two bytes
        ("020200", "trailing zero"),  # a 0 the writer leaves out
        ("010202", "2 values for 1 keys"),
        ("01" + "ff" * 9 + "03", "64-bit"),  # 2**65 - 1: outside int64
    ],
)
def test_unpack__refuses_what_pack_never_writes(wire: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        packed.unpack(bytes.fromhex(wire), 24)


def test_pack__refuses_maps_with_gaps() -> None:
    assert not packed.packable({0: 1, 2: 3}, 24)
    assert not packed.packable({}, 24)
    assert not packed.packable(dict.fromkeys(range(25), 1), 24)
    with pytest.raises(ValueError, match=r"keys 0\.\.n-1"):
        packed.pack({1: 1})


def test_report__a_whole_fingerprint_travels_packed() -> None:
    fp = {0: 992_313, 1: -79_795, 2: 0, 3: 7}
    data = m.encode(report(fingerprint=fp))
    assert cbor2.loads(data)[14] == bytes.fromhex("04f29079e5de09000e")
    assert m.decode(data).fingerprint == fp  # type: ignore[attr-defined]


def test_report__the_map_form_of_older_devices_still_reads() -> None:
    """A device before the packed form sent the fingerprint as a CBOR map: the same report."""
    fp = {0: 992_313, 1: -79_795, 2: 0, 3: 7}
    new = m.encode(report(fingerprint=fp))
    old_map = cbor2.loads(new)
    old_map[14] = fp
    old = cbor2.dumps(old_map, canonical=True)
    assert old != new
    assert m.decode(old) == m.decode(new)


def test_report__a_fingerprint_with_gaps_stays_a_map() -> None:
    data = m.encode(report(fingerprint={0: -7, 3: 1 << 40}))
    assert cbor2.loads(data)[14] == {0: -7, 3: 1 << 40}


@pytest.mark.parametrize("wire", ["", "00", "0180", "020200"])
def test_report__a_bad_packed_fingerprint_is_bad_field(wire: str) -> None:
    data = cbor2.loads(m.encode(report()))
    data[14] = bytes.fromhex(wire)
    with pytest.raises(ProtocolError) as err:
        m.decode(cbor2.dumps(data, canonical=True))
    assert err.value.reason is Reason.BAD_FIELD


def test_report__model_sha256_may_be_a_prefix_of_8_bytes_or_more() -> None:
    for n in (8, 16, 32):
        msg = report(model_sha256=SHA[:n])
        assert m.decode(m.encode(msg)) == msg
    with pytest.raises(ProtocolError) as err:
        report(model_sha256=SHA[:7])
    assert err.value.reason is Reason.BAD_FIELD
    with pytest.raises(ProtocolError):
        m.Birth(sender="d", seq=2, boot=1, ts_ms=1, agent_version="1", model_id="m",
                model_sha256=SHA[:8], config_sha256=SHA, device_kind="mcu", backlog=0,
                resume_seq=1)  # fmt: skip  # only reports carry the prefix

"""The optional location of reports and triggers (key 21): wire shape, bounds, and that it is
a backwards-compatible addition."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest

from protocol import messages as m
from protocol.errors import ProtocolError, Reason
from tests.protocol.test_messages import report

SHANGHAI = m.Location(lat_e7=312_304_160, lon_e7=1_214_737_010, accuracy_m=8, source="gps")


def test_location_round_trips_on_the_wire_as_a_small_map() -> None:
    r = report(location=SHANGHAI)
    data = cbor2.loads(m.encode(r))
    assert data[m.KEY_LOCATION] == {1: 312_304_160, 2: 1_214_737_010, 3: 8, 4: "gps"}
    assert m.decode(m.encode(r)) == r


def test_absent_location_leaves_the_encoding_as_it_was() -> None:
    plain = report()
    assert plain.location is None
    assert m.KEY_LOCATION not in cbor2.loads(m.encode(plain))


def test_a_reader_that_ignores_key_21_still_reads_the_rest() -> None:
    """What an older reader sees: the same message once key 21 is dropped."""
    data = cbor2.loads(m.encode(report(location=SHANGHAI)))
    del data[m.KEY_LOCATION]
    assert m.decode(cbor2.dumps(data, canonical=True)) == report()


def test_trigger_carries_a_location_too() -> None:
    t = m.Trigger(
        sender="rig-07",
        seq=3,
        boot=1,
        ts_ms=1,
        model_id="risk-v1",
        model_sha256=bytes(32),
        risk_pm=0,
        mono_ms=1,
        rule="sos",
        priority=255,
        body=m.EmergencyBody(emergency="disaster", source="explicit"),
        location=m.Location(lat_e7=-338_688_000, lon_e7=0, accuracy_m=150_000, source="ip"),
    )
    assert m.decode(m.encode(t)) == t


@pytest.mark.parametrize(
    "location",
    [
        {1: 900_000_001, 2: 0, 3: 5, 4: "gps"},  # latitude over 90 degrees
        {1: 0, 2: -1_800_000_001, 3: 5, 4: "gps"},  # longitude under -180
        {1: 0, 2: 0, 3: -1, 4: "gps"},  # negative accuracy
        {1: 0, 2: 0, 3: 5, 4: "wifi"},  # unknown source
        {1: 0, 2: 0, 3: 5},  # source missing
        {"1": 0, 2: 0, 3: 5, 4: "gps"},  # text key
        [0, 0, 5, "gps"],  # not a map
        None,  # null instead of leaving it out
    ],
)
def test_bad_location_is_refused_with_a_reason(location: Any) -> None:
    data = cbor2.loads(m.encode(report()))
    data[m.KEY_LOCATION] = location
    with pytest.raises(ProtocolError) as err:
        m.decode(cbor2.dumps(data, canonical=True))
    assert err.value.reason in (Reason.BAD_FIELD, Reason.MISSING_FIELD)

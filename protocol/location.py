"""The optional location of a report or trigger (key 21): a record inside the message. Split
from protocol.messages, which re-exports every name here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protocol.errors import ProtocolError, Reason
from protocol.fields import Choice, IntRange, UInt
from protocol.schema import Record
from protocol.schema import field as _f

LOCATION_SOURCES = frozenset({"gps", "cell", "ip"})


@dataclass(frozen=True, kw_only=True)
class Location(Record):
    """Where the device was when it made the message (optional in reports and triggers).

    Degrees times 10^7 (about 1 cm, as GNSS receivers report them) because the contract has no
    floats; `accuracy_m` is the radius the source claims (GPS metres, a cell kilometres, a
    GeoIP lookup tens to hundreds of kilometres).
    """

    lat_e7: int = _f(1, IntRange(-900_000_000, 900_000_000))
    lon_e7: int = _f(2, IntRange(-1_800_000_000, 1_800_000_000))
    accuracy_m: int = _f(3, UInt(20_000_000))
    source: str = _f(4, Choice(LOCATION_SOURCES))


@dataclass(frozen=True)
class Location_:
    """Field type of the optional `location` (key 21): absent, or a Location map."""

    nested = True  # a record inside the record (protocol.schema)

    def check(self, value: Any) -> Location | None:
        if value is not None and not isinstance(value, Location):
            raise ValueError("must be a Location")
        return value

    def decode(self, value: Any, message: dict[Any, Any]) -> Location:
        if not isinstance(value, dict) or any(type(key) is not int for key in value):
            raise ProtocolError(Reason.BAD_FIELD, "location must be a map with integer keys")
        return Location(**Location._kwargs(value))

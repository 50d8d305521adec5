"""Trigger bodies: the typed body of each trigger kind (key 20 of a Trigger; key 17 names the
kind). Split from protocol.messages, which re-exports every name here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from protocol.errors import ProtocolError, Reason
from protocol.fields import Choice, Id, UInt
from protocol.schema import Record
from protocol.schema import field as _f

EMERGENCY_KINDS = frozenset({"illness", "disaster", "education"})


@dataclass(frozen=True, kw_only=True)
class Body(Record):
    """Base of the typed bodies of a trigger; NAME is the trigger kind on the wire (key 17)."""

    NAME: ClassVar[str] = ""


@dataclass(frozen=True, kw_only=True)
class RestockBody(Body):
    """Fridge inventory under its threshold: offer a restock for the estimated cost."""

    NAME: ClassVar[str] = "restock"
    item: str = _f(1, Id())
    level_pct: int = _f(2, UInt(100))
    threshold_pct: int = _f(3, UInt(100))
    est_cost_fen: int = _f(4, UInt(10**12))


@dataclass(frozen=True, kw_only=True)
class HealthStreakBody(Body):
    """The wearer met the daily step goal `streak_days` days in a row."""

    NAME: ClassVar[str] = "health_streak"
    streak_days: int = _f(1, UInt(10_000))
    goal_steps: int = _f(2, UInt(1_000_000))


@dataclass(frozen=True, kw_only=True)
class EvTierBody(Body):
    """An EV's 30-day mileage moved it into a rate tier."""

    NAME: ClassVar[str] = "ev_tier"
    km_30d: int = _f(1, UInt(1_000_000))
    tier: int = _f(2, UInt(15))


@dataclass(frozen=True, kw_only=True)
class EmergencyBody(Body):
    """An emergency: asked for explicitly or detected (a wearable's fall detector)."""

    NAME: ClassVar[str] = "emergency"
    emergency: str = _f(1, Choice(EMERGENCY_KINDS))
    source: str = _f(2, Choice(frozenset({"explicit", "fall"})))
    amount_fen: int = _f(3, UInt(10**12), 0)


@dataclass(frozen=True, kw_only=True)
class TurnoverBody(Body):
    """A merchant device's turnover of one day (`day`: days since the Unix epoch, UTC)."""

    NAME: ClassVar[str] = "turnover"
    day: int = _f(1, UInt(10**7))
    turnover_fen: int = _f(2, UInt(10**15))


BODIES: dict[str, type[Body]] = {
    cls.NAME: cls
    for cls in (RestockBody, HealthStreakBody, EvTierBody, EmergencyBody, TurnoverBody)
}
TRIGGER_KINDS = frozenset(BODIES)


@dataclass(frozen=True)
class Body_:
    """Field type of Trigger.body: the class is chosen by the trigger kind (key 17)."""

    nested = True  # a record inside the record (protocol.schema)

    def check(self, value: Any) -> Body:
        if not isinstance(value, Body) or type(value) is Body:
            raise ValueError("must be a trigger body")
        return value

    def decode(self, value: Any, message: dict[Any, Any]) -> Body:
        name = message.get(17)
        cls = BODIES.get(name) if isinstance(name, str) else None
        if cls is None:
            raise ProtocolError(
                Reason.BAD_FIELD, f"Trigger.trigger must be one of {', '.join(sorted(BODIES))}"
            )
        if not isinstance(value, dict) or any(type(key) is not int for key in value):
            raise ProtocolError(Reason.BAD_FIELD, "Trigger.body must be a map with integer keys")
        return cls(**cls._kwargs(value))

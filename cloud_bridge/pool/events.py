"""Events: what changed in a pool, in order. Stored with the pool's version, published as-is."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    """`kind` is a stable snake_case name; `data` holds ints and short strings only."""

    kind: str
    at_ms: int
    data: Mapping[str, int | str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", dict(self.data))

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "at_ms": self.at_ms, "data": dict(self.data)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Event:
        return cls(kind=data["kind"], at_ms=data["at_ms"], data=data.get("data", {}))

"""PoolView: the read model published for the cloud team and returned with every outcome."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from cloud_bridge.pool.state import PoolState, Status


@dataclass(frozen=True)
class PoolView:
    """A pool as the outside sees it. Amounts in fen; `version` increases on every change.

    available_fen = limit_fen - outstanding_fen - held_fen, never negative. `interest_fen` is
    billed and unpaid; `accrued_interest_fen` has accrued since the last statement (as of
    `updated_ms`). `min_due_fen` is what is still to pay of the last statement's minimum by
    `due_ms` (0 when nothing is due).
    """

    user: str
    status: Status
    limit_fen: int
    available_fen: int
    outstanding_fen: int
    held_fen: int
    interest_fen: int
    accrued_interest_fen: int
    rate_bps: int
    min_due_fen: int
    due_ms: int
    next_statement_ms: int
    on_time_cycles: int
    version: int
    updated_ms: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(self.status))
        if self.available_fen != self.limit_fen - self.outstanding_fen - self.held_fen:
            raise ValueError("available_fen must equal limit - outstanding - held")
        if self.available_fen < 0:
            raise ValueError("available_fen is never negative")

    @classmethod
    def of(cls, state: PoolState) -> PoolView:
        return cls(
            user=state.user,
            status=state.status,
            limit_fen=state.limit_fen,
            available_fen=state.available_fen,
            outstanding_fen=state.outstanding_fen,
            held_fen=state.held_fen,
            interest_fen=state.interest_fen,
            accrued_interest_fen=state.accrued_fen,
            rate_bps=state.rate_bps,
            min_due_fen=state.due_left_fen,
            due_ms=state.due_ms,
            next_statement_ms=state.next_statement_ms,
            on_time_cycles=state.on_time_cycles,
            version=state.version,
            updated_ms=state.updated_ms,
        )

    def to_json(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in _FIELDS}
        data["status"] = self.status.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PoolView:
        return cls(**data)


_FIELDS = tuple(f.name for f in fields(PoolView))

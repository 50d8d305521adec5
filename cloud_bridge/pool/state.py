"""The state of one credit pool: a frozen value that checks its own invariants.

The engine maps (state, command, time) to the next state; the store keeps it as JSON beside a
few columns for queries. Derived amounts (available, outstanding, held) are properties, so they
cannot drift from the parts they are made of.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from typing import Any

from cloud_bridge.pool.commands import check_user
from protocol.names import ID_PATTERN as ID_RE

DAY_MS = 86_400_000
YEAR_MS = 365 * DAY_MS
# Interest accrues as principal_fen * elapsed_ms * rate_bps / ACCRUAL_DENOM fen; the remainder of
# the division is carried in `accrual_rem`, so accrual is exact and independent of how often it is
# computed (the same total whether a pool is touched every second or once a month).
ACCRUAL_DENOM = 10_000 * YEAR_MS


_INT_FIELDS = (
    "limit_fen",
    "rate_bps",
    "opened_ms",
    "updated_ms",
    "next_statement_ms",
    "principal_fen",
    "interest_fen",
    "accrued_fen",
    "accrual_rem",
    "due_ms",
    "min_due_fen",
    "due_left_fen",
    "on_time_cycles",
    "boost_fen",
    "next_plan_no",
    "version",
    "next_review_ms",
)


class Status(enum.StrEnum):
    OPEN = "open"
    FROZEN = "frozen"
    CLOSED = "closed"


class StateError(ValueError):
    """A state that breaks an invariant: a bug in the engine or a corrupted row, never input."""


def _nonneg(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise StateError(f"{name} must be a non-negative integer, got {value!r}")


@dataclass(frozen=True)
class Hold:
    """Reserved credit, live while the clock is before `expires_ms`; `merchant` is where the
    purchase is ("" for none), which decides whether confirming it makes an installment plan."""

    hold_id: str
    amount_fen: int
    expires_ms: int
    merchant: str = ""

    def __post_init__(self) -> None:
        _nonneg("hold amount_fen", self.amount_fen)
        if self.amount_fen == 0:
            raise StateError("a hold reserves a positive amount")
        if self.merchant and not ID_RE.fullmatch(self.merchant):
            raise StateError(f"hold merchant {self.merchant!r} is not an id")


@dataclass(frozen=True)
class Plan:
    """A 0% installment plan: `principal_fen` still owed, `periods_left` statements to bill it."""

    plan_no: int
    principal_fen: int
    periods_left: int

    def __post_init__(self) -> None:
        _nonneg("plan principal_fen", self.principal_fen)
        _nonneg("plan periods_left", self.periods_left)
        if self.principal_fen == 0:
            raise StateError("a finished plan is removed, not kept at zero")

    def period_fen(self) -> int:
        """The amount the next statement bills: an even share, the last period takes the rest."""
        if self.periods_left <= 1:
            return self.principal_fen
        return -(-self.principal_fen // self.periods_left)


@dataclass(frozen=True)
class Spend:
    """An emergency draw, remembered while it counts against the rolling daily budget."""

    at_ms: int
    amount_fen: int

    def __post_init__(self) -> None:
        _nonneg("emergency at_ms", self.at_ms)
        _nonneg("emergency amount_fen", self.amount_fen)


@dataclass(frozen=True)
class MileageClaim:
    """The last accepted mileage report: the next one is judged against it."""

    km_per_month: int
    at_ms: int

    def __post_init__(self) -> None:
        _nonneg("mileage km_per_month", self.km_per_month)
        _nonneg("mileage at_ms", self.at_ms)


@dataclass(frozen=True)
class DayTurnover:
    """A merchant's reported turnover of one day (days since the Unix epoch, UTC)."""

    day: int
    turnover_fen: int

    def __post_init__(self) -> None:
        _nonneg("turnover day", self.day)
        _nonneg("turnover_fen", self.turnover_fen)


@dataclass(frozen=True)
class PoolState:
    """One pool. Amounts are fen; times are ms since the epoch of the injected clock."""

    user: str
    status: Status
    limit_fen: int
    rate_bps: int
    opened_ms: int
    updated_ms: int
    next_statement_ms: int
    principal_fen: int = 0  # revolving principal, interest-bearing
    interest_fen: int = 0  # billed by statements, unpaid
    accrued_fen: int = 0  # accrued since the last statement, not yet billed
    accrual_rem: int = 0  # sub-fen remainder numerator, < ACCRUAL_DENOM
    holds: tuple[Hold, ...] = ()
    plans: tuple[Plan, ...] = ()
    due_ms: int = 0  # when the last statement's minimum is due (0: no statement yet)
    min_due_fen: int = 0  # the last statement's minimum payment
    due_left_fen: int = 0  # of that minimum, still unpaid
    on_time_cycles: int = 0  # consecutive statements paid on time (reset by a raise or a miss)
    boost_fen: int = 0  # health-goal boosts granted so far
    next_plan_no: int = 1
    freeze_reason: str = ""
    version: int = 0
    # Trigger limits (cloud_bridge/pool/limits.py): what the rolling windows still count.
    emergencies: tuple[Spend, ...] = ()  # emergency draws, oldest first
    boosts_ms: tuple[int, ...] = ()  # times of health boosts, oldest first
    mileage: MileageClaim | None = None  # the last accepted mileage report
    # Merchant pools (cloud_bridge/pool/merchant.py): the turnover a review still looks at,
    # oldest day first; the first day ever reported; when the next review is due (0: none).
    turnover: tuple[DayTurnover, ...] = ()
    first_turnover_day: int | None = None
    next_review_ms: int = 0

    def __post_init__(self) -> None:
        check_user(self.user)
        if not isinstance(self.status, Status):
            object.__setattr__(self, "status", Status(self.status))
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if type(value) is not int or value < 0:  # bool is not an amount either
                _nonneg(name, value)
        for at_ms in self.boosts_ms:
            _nonneg("boost at_ms", at_ms)
        if self.accrual_rem >= ACCRUAL_DENOM:
            raise StateError("accrual_rem must be below ACCRUAL_DENOM")
        if self.available_fen < 0:
            raise StateError(
                f"available would be {self.available_fen}: limit {self.limit_fen} < outstanding "
                f"{self.outstanding_fen} + held {self.held_fen}"
            )
        if self.first_turnover_day is not None:
            _nonneg("first_turnover_day", self.first_turnover_day)
        days = [t.day for t in self.turnover]
        if days != sorted(set(days)):
            raise StateError("turnover days must be unique and ascending")
        if self.turnover and (self.first_turnover_day is None or self.first_turnover_day > days[0]):
            raise StateError("first_turnover_day must be at or before the oldest turnover kept")
        if len({h.hold_id for h in self.holds}) != len(self.holds):
            raise StateError("hold ids must be unique")
        if any(p.plan_no >= self.next_plan_no for p in self.plans):
            raise StateError("plan numbers must be below next_plan_no")
        if self.due_left_fen > self.min_due_fen:
            raise StateError("due_left_fen cannot exceed min_due_fen")
        if self.status is Status.CLOSED and (
            self.limit_fen or self.owed_fen or self.holds or self.plans
        ):
            raise StateError("a closed pool has no limit, no debt and no holds")

    @property
    def held_fen(self) -> int:
        return sum(h.amount_fen for h in self.holds)

    @property
    def installment_fen(self) -> int:
        return sum(p.principal_fen for p in self.plans)

    @property
    def outstanding_fen(self) -> int:
        """Principal drawn and not repaid, revolving plus installments (interest excluded)."""
        return self.principal_fen + self.installment_fen

    @property
    def available_fen(self) -> int:
        return self.limit_fen - self.outstanding_fen - self.held_fen

    @property
    def owed_fen(self) -> int:
        """Everything a full repayment would clear now, accrued interest included."""
        return self.interest_fen + self.accrued_fen + self.outstanding_fen

    def to_json(self) -> dict[str, Any]:
        # By hand rather than dataclasses.asdict: this runs on every command, and asdict's
        # recursive deep copy was a seventh of the service's time in the bench.
        data = {name: getattr(self, name) for name in _JSON_FIELDS}
        data["status"] = self.status.value
        data["holds"] = [_hold_json(h) for h in self.holds]
        data["plans"] = [
            {"plan_no": p.plan_no, "principal_fen": p.principal_fen, "periods_left": p.periods_left}
            for p in self.plans
        ]
        data["emergencies"] = [
            {"at_ms": e.at_ms, "amount_fen": e.amount_fen} for e in self.emergencies
        ]
        data["boosts_ms"] = list(self.boosts_ms)
        if self.first_turnover_day is None:  # not a merchant pool: its JSON as it always was
            for name in ("turnover", "first_turnover_day", "next_review_ms"):
                del data[name]
        else:
            data["turnover"] = [[t.day, t.turnover_fen] for t in self.turnover]
        data["mileage"] = (
            None
            if self.mileage is None
            else {"km_per_month": self.mileage.km_per_month, "at_ms": self.mileage.at_ms}
        )
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PoolState:
        fields = dict(data)
        fields["status"] = Status(fields["status"])
        fields["holds"] = tuple(Hold(**h) for h in fields.get("holds", ()))
        fields["plans"] = tuple(Plan(**p) for p in fields.get("plans", ()))
        # States stored before the trigger limits have none of these keys: nothing counted yet.
        fields["emergencies"] = tuple(Spend(**e) for e in fields.get("emergencies", ()))
        fields["boosts_ms"] = tuple(fields.get("boosts_ms", ()))
        mileage = fields.get("mileage")
        fields["mileage"] = None if mileage is None else MileageClaim(**mileage)
        fields["turnover"] = tuple(DayTurnover(d, f) for d, f in fields.get("turnover", ()))
        return cls(**fields)


_JSON_FIELDS = tuple(f.name for f in fields(PoolState))


def _hold_json(h: Hold) -> dict[str, Any]:
    data: dict[str, Any] = {
        "hold_id": h.hold_id,
        "amount_fen": h.amount_fen,
        "expires_ms": h.expires_ms,
    }
    if h.merchant:  # absent in holds stored before merchants: keep their JSON as it was
        data["merchant"] = h.merchant
    return data

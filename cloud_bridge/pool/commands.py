"""Commands: what a caller asks of one pool. Frozen, self-validating, JSON round-trippable.

Every command names the pool (`user`) and carries an idempotency `key`, unique per pool: running
the same command twice with the same key returns the first outcome and changes nothing; reusing a
key for a different command is refused with `key_reused`. Amounts are integer fen (1 yuan = 100
fen); durations are milliseconds.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from cloud_bridge.pool.errors import InvalidCommand
from protocol.names import ID_PATTERN as ID_RE  # a pool user is a level of the topic tree

KEY_RE = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII, no spaces
REASON_RE = re.compile(r"[a-z0-9_]{1,32}")
MAX_FEN = 10**15  # ten trillion yuan: far above any pool, far below int64 overflow


class Emergency(enum.StrEnum):
    """Emergency draw kinds; each has a response-time target in the policy."""

    ILLNESS = "illness"
    DISASTER = "disaster"
    EDUCATION = "education"


class LifeEvent(enum.StrEnum):
    """Life-stage events; each adjusts the limit by a policy-defined number of basis points."""

    MARRIAGE = "marriage"
    CHILDBIRTH = "childbirth"
    HOME_PURCHASE = "home_purchase"
    BUSINESS_START = "business_start"
    RETIREMENT = "retirement"


def check_user(user: object) -> str:
    """The user id if it is 1-64 characters of [A-Za-z0-9._-], else InvalidCommand."""
    if not isinstance(user, str) or not ID_RE.fullmatch(user):
        raise InvalidCommand(f"user must be 1-64 characters of [A-Za-z0-9._-], got {user!r}")
    return user


def _int(name: str, value: object, lo: int, hi: int = MAX_FEN) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidCommand(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if not lo <= value <= hi:
        raise InvalidCommand(f"{name} must be {lo}..{hi}, got {value}")


@dataclass(frozen=True, kw_only=True)
class Command:
    """Fields every command has. Subclasses set KIND, the stable name used in JSON and the CLI."""

    KIND: ClassVar[str] = ""
    LATER: ClassVar[frozenset[str]] = frozenset()
    """Fields added after commands of this kind were first recorded: left out of the JSON (and
    so of the fingerprint) while at their default, so a retry of a command recorded by an
    older version still matches its record."""
    user: str
    key: str

    def __post_init__(self) -> None:
        check_user(self.user)
        if not isinstance(self.key, str) or not KEY_RE.fullmatch(self.key):
            raise InvalidCommand(
                f"key must be 1-128 printable ASCII characters without spaces, got {self.key!r}"
            )

    def to_json(self) -> dict[str, Any]:
        """A plain mapping with `kind`; enums become their string values."""
        out: dict[str, Any] = {"kind": self.KIND}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in self.LATER and value == f.default:
                continue
            out[f.name] = value.value if isinstance(value, enum.Enum) else value
        return out

    def fingerprint(self) -> str:
        """SHA-256 of the canonical JSON: two commands are the same request iff this is equal."""
        text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, kw_only=True)
class OpenPool(Command):
    """Approve a credit line (or reopen a closed one) with `limit_fen`; rate defaults to policy."""

    KIND: ClassVar[str] = "open"
    limit_fen: int
    rate_bps: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _int("limit_fen", self.limit_fen, 1)
        if self.rate_bps is not None:
            _int("rate_bps", self.rate_bps, 0, 10_000)


@dataclass(frozen=True, kw_only=True)
class Draw(Command):
    """Draw `amount_fen` now. `installments` > 0 asks for a 0% plan of that many periods;
    `emergency` may use the emergency reserve, counts against the daily emergency budget and
    carries a response-time target. `up_to` makes `amount_fen` a ceiling: draw as much of it as
    the pool and the emergency budget allow (at least the policy's smallest draw)."""

    KIND: ClassVar[str] = "draw"
    LATER: ClassVar[frozenset[str]] = frozenset({"up_to"})
    amount_fen: int
    installments: int = 0
    emergency: Emergency | None = None
    up_to: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        _int("amount_fen", self.amount_fen, 1)
        _int("installments", self.installments, 0, 360)
        if not isinstance(self.up_to, bool):
            raise InvalidCommand(f"up_to must be true or false, got {self.up_to!r}")
        if self.up_to and self.installments:
            raise InvalidCommand("a draw of up to an amount cannot be an installment plan")
        if self.emergency is not None:
            try:
                object.__setattr__(self, "emergency", Emergency(self.emergency))
            except ValueError:
                choices = ", ".join(e.value for e in Emergency)
                raise InvalidCommand(f"emergency must be one of {choices}") from None
            if self.installments:
                raise InvalidCommand("an emergency draw cannot also be an installment plan")


@dataclass(frozen=True, kw_only=True)
class Repay(Command):
    """Repay `amount_fen`: billed interest first, then accrued interest, principal, installments."""

    KIND: ClassVar[str] = "repay"
    amount_fen: int

    def __post_init__(self) -> None:
        super().__post_init__()
        _int("amount_fen", self.amount_fen, 1)


@dataclass(frozen=True, kw_only=True)
class PlaceHold(Command):
    """Reserve `amount_fen` of available credit until confirmed, released or expired.
    `merchant` names the shop the purchase is at ("" for none): a hold at a merchant the policy
    lists in `installments.eligible_merchants` may become an installment plan when confirmed."""

    KIND: ClassVar[str] = "hold"
    LATER: ClassVar[frozenset[str]] = frozenset({"merchant"})
    hold_id: str
    amount_fen: int
    ttl_ms: int | None = None
    merchant: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.hold_id, str) or not ID_RE.fullmatch(self.hold_id):
            raise InvalidCommand(
                f"hold_id must be 1-64 characters of [A-Za-z0-9._-], got {self.hold_id!r}"
            )
        _int("amount_fen", self.amount_fen, 1)
        if self.ttl_ms is not None:
            _int("ttl_ms", self.ttl_ms, 1, 10**12)
        if not isinstance(self.merchant, str) or (
            self.merchant and not ID_RE.fullmatch(self.merchant)
        ):
            raise InvalidCommand(
                f"merchant must be empty or 1-64 characters of [A-Za-z0-9._-], "
                f"got {self.merchant!r}"
            )


@dataclass(frozen=True, kw_only=True)
class ConfirmHold(Command):
    """Turn a live hold into a draw of `amount_fen` (default: all of it); the rest is released.
    A purchase at an eligible merchant of at least `installments.min_amount_fen` becomes a 0 %
    plan of `installments.periods` by itself, unless `opt_out` (the user wants it revolving)."""

    KIND: ClassVar[str] = "confirm"
    LATER: ClassVar[frozenset[str]] = frozenset({"opt_out"})
    hold_id: str
    amount_fen: int | None = None
    opt_out: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.hold_id, str) or not ID_RE.fullmatch(self.hold_id):
            raise InvalidCommand(
                f"hold_id must be 1-64 characters of [A-Za-z0-9._-], got {self.hold_id!r}"
            )
        if self.amount_fen is not None:
            _int("amount_fen", self.amount_fen, 1)
        if not isinstance(self.opt_out, bool):
            raise InvalidCommand(f"opt_out must be true or false, got {self.opt_out!r}")


@dataclass(frozen=True, kw_only=True)
class ReleaseHold(Command):
    """Void a live hold: its amount becomes available again."""

    KIND: ClassVar[str] = "release"
    hold_id: str

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.hold_id, str) or not ID_RE.fullmatch(self.hold_id):
            raise InvalidCommand(
                f"hold_id must be 1-64 characters of [A-Za-z0-9._-], got {self.hold_id!r}"
            )


@dataclass(frozen=True, kw_only=True)
class Freeze(Command):
    """Stop new draws, holds and confirmations (risk); repayments still work."""

    KIND: ClassVar[str] = "freeze"
    reason: str = "risk"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.reason, str) or not REASON_RE.fullmatch(self.reason):
            raise InvalidCommand(
                f"reason must be 1-32 characters of [a-z0-9_], got {self.reason!r}"
            )


@dataclass(frozen=True, kw_only=True)
class Unfreeze(Command):
    """Lift a freeze."""

    KIND: ClassVar[str] = "unfreeze"


@dataclass(frozen=True, kw_only=True)
class ClosePool(Command):
    """Close a pool that owes nothing and has no holds; its limit becomes 0."""

    KIND: ClassVar[str] = "close"


@dataclass(frozen=True, kw_only=True)
class SetLimit(Command):
    """Operator limit change, within the policy range and not below what is used or held."""

    KIND: ClassVar[str] = "set_limit"
    limit_fen: int

    def __post_init__(self) -> None:
        super().__post_init__()
        _int("limit_fen", self.limit_fen, 1)


@dataclass(frozen=True, kw_only=True)
class ReportMileage(Command):
    """EV mileage for the last month: picks the rate tier (more electric kilometres, lower rate)."""

    KIND: ClassVar[str] = "mileage"
    km_per_month: int

    def __post_init__(self) -> None:
        super().__post_init__()
        _int("km_per_month", self.km_per_month, 0, 1_000_000)


@dataclass(frozen=True, kw_only=True)
class HealthGoalMet(Command):
    """A wearable health goal was met: boost the limit by one policy step, up to the cap."""

    KIND: ClassVar[str] = "health"


@dataclass(frozen=True, kw_only=True)
class LifeStage(Command):
    """A life-stage event adjusts the limit by the policy's basis points for it."""

    KIND: ClassVar[str] = "life_stage"
    event: LifeEvent

    def __post_init__(self) -> None:
        super().__post_init__()
        try:
            object.__setattr__(self, "event", LifeEvent(self.event))
        except ValueError:
            choices = ", ".join(e.value for e in LifeEvent)
            raise InvalidCommand(f"event must be one of {choices}") from None


@dataclass(frozen=True, kw_only=True)
class ReportTurnover(Command):
    """A merchant device's signed turnover of one day (`day`: days since the Unix epoch, UTC).
    The first report makes the pool a merchant pool, whose limit the policy then reviews on a
    schedule from the trailing turnover (cloud_bridge/pool/merchant.py)."""

    KIND: ClassVar[str] = "turnover"
    day: int
    turnover_fen: int

    def __post_init__(self) -> None:
        super().__post_init__()
        _int("day", self.day, 0, 10**7)
        _int("turnover_fen", self.turnover_fen, 0)


@dataclass(frozen=True, kw_only=True)
class Tick(Command):
    """Nothing but housekeeping: expire holds and close statements that are due by now."""

    KIND: ClassVar[str] = "tick"


COMMANDS: Mapping[str, type[Command]] = {
    c.KIND: c
    for c in (
        OpenPool,
        Draw,
        Repay,
        PlaceHold,
        ConfirmHold,
        ReleaseHold,
        Freeze,
        Unfreeze,
        ClosePool,
        SetLimit,
        ReportMileage,
        HealthGoalMet,
        LifeStage,
        ReportTurnover,
        Tick,
    )
}


def from_json(data: Mapping[str, Any]) -> Command:
    """The command `to_json` produced; InvalidCommand for an unknown kind or field."""
    fields = dict(data)
    kind = fields.pop("kind", None)
    cls = COMMANDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise InvalidCommand(f"unknown command kind {kind!r}; known: {', '.join(COMMANDS)}")
    try:
        return cls(**fields)
    except TypeError as exc:
        raise InvalidCommand(f"{kind}: {exc}") from exc

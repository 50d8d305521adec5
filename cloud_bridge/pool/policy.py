"""Credit policy: every rule the engine applies that a credit operator may tune, with its default.

The dataclasses below are the one schema: each knob is declared once (`knob`, a confschema key
riding on the field), with its default, its range and a line of help, and the TOML loader, the
validation, `cloud-bridge pool policy` and the docs all read that declaration; agent.toml and
bridge.toml use the same mechanism. The policy words its errors in its own style.

Money is integer fen, rates and percentages are basis points (1 bps = 0.01 %), durations are
days or milliseconds as named: a float anywhere is refused.

A bad policy fails at load with a `PolicyError` that names the key and says how to fix it.
"""

from __future__ import annotations

import itertools
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloud_bridge.pool.commands import Emergency, LifeEvent
from cloud_bridge.pool.errors import PolicyError
from confschema import (
    Fault,
    Invalid,
    Key,
    Problem,
    Schema,
    SchemaError,
    check_fields,
    is_integer,
    key_field,
    keys_of,
    read_document,
)
from protocol.names import ID_PATTERN as ID_RE

MAX_FEN = 10**15
DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
EMERGENCY_WINDOW_MS = DAY_MS
"""Emergency draws are budgeted per rolling 24 hours (no calendar day: no time zone to set, no
fresh budget at midnight)."""
BOOST_WINDOW_MS = WEEK_MS
"""Health boosts are counted per rolling 7 days."""
MILEAGE_DAYS = 30
"""A mileage claim is the distance driven in the last 30 days (the device's `km_30d`)."""


def knob(default: int, lo: int, hi: int, help: str) -> Any:
    """A policy field: default, inclusive range and a line of help for errors and docs."""

    def check(value: Any) -> int:
        if not is_integer(value):
            raise Invalid(
                f"must be an integer ({help}), got {value!r}",
                fix=f"write a whole number such as {default} (no quotes, no decimal point: "
                "money is fen, percentages are basis points)",
            )
        if not lo <= value <= hi:
            raise Invalid(
                f"must be {lo}..{hi} ({help}), got {value}",
                fix=f"choose a value in range (default {default})",
            )
        return int(value)

    return key_field(Key(default, check, help=help))


def _message(problem: Problem) -> str:
    """A schema problem in the policy's own words: "policy key 'section.key' ...; fix: ..."."""
    section, key = problem.section, f"{problem.section}.{problem.key}"
    if problem.fault is Fault.UNKNOWN_SECTION:
        return (
            f"policy has an unknown section [{section}]; fix: use one of "
            f"{', '.join('[' + s + ']' for s in problem.known)}"
        )
    if problem.fault is Fault.NOT_A_TABLE:
        return f"policy key {section!r} must be a table; fix: write it as [{section}]"
    if problem.fault is Fault.UNKNOWN_KEY:
        return f"policy key {key!r} is unknown; fix: use one of {', '.join(sorted(problem.known))}"
    return f"policy key {key!r} {problem.reason}; fix: {problem.fix}"


class _Section:
    """Checks every knob of a section built directly; `_where` is the TOML section name."""

    _where = ""

    def __post_init__(self) -> None:
        try:
            check_fields(self, self._where)
        except SchemaError as exc:
            raise PolicyError(_message(exc.problem)) from None


@dataclass(frozen=True)
class Limits(_Section):
    _where = "limits"
    min_fen: int = knob(10_000, 1, MAX_FEN, "smallest limit a pool may have, fen")
    max_fen: int = knob(50_000_000, 1, MAX_FEN, "largest limit; raises and boosts stop here, fen")
    min_draw_fen: int = knob(100, 1, MAX_FEN, "smallest draw or hold, fen")


@dataclass(frozen=True)
class RateTier:
    """Rate for pools whose reported EV mileage is at least `min_km_per_month`."""

    min_km_per_month: int
    rate_bps: int


_TIER_KEYS = ("min_km_per_month", "rate_bps")
_TIER_MAX = {"min_km_per_month": 1_000_000, "rate_bps": 10_000}


def _tiers(value: Any) -> tuple[RateTier, ...]:
    """[[rates.tiers]] tables (or RateTiers): ascending min_km_per_month, the first 0."""
    fix = "list [[rates.tiers]] tables with ascending min_km_per_month, the first 0"
    if not isinstance(value, list | tuple):
        raise Invalid("must be an array of tables", fix=fix)
    if not value:
        raise Invalid("is empty", fix=fix)
    tiers = []
    for i, item in enumerate(value):
        if isinstance(item, RateTier):
            item = {"min_km_per_month": item.min_km_per_month, "rate_bps": item.rate_bps}
        if not isinstance(item, Mapping) or set(item) != set(_TIER_KEYS):
            raise Invalid(
                "must have exactly the keys min_km_per_month and rate_bps", fix=fix, at=f"[{i}]"
            )
        for name in _TIER_KEYS:
            hi, got = _TIER_MAX[name], item[name]
            if not is_integer(got) or not 0 <= got <= hi:
                raise Invalid(
                    f"must be an integer 0..{hi}, got {got!r}", fix=fix, at=f"[{i}].{name}"
                )
        tiers.append(RateTier(item["min_km_per_month"], item["rate_bps"]))
    kms = [t.min_km_per_month for t in tiers]
    if kms[0] != 0 or any(a >= b for a, b in itertools.pairwise(kms)):
        raise Invalid(f"has min_km_per_month {kms}", fix=fix)
    return tuple(tiers)


_DEFAULT_TIERS = [
    {"min_km_per_month": 0, "rate_bps": 1800},
    {"min_km_per_month": 1_500, "rate_bps": 1650},
    {"min_km_per_month": 3_000, "rate_bps": 1500},
]


@dataclass(frozen=True)
class Rates(_Section):
    _where = "rates"
    base_bps: int = knob(1800, 0, 10_000, "annual interest rate at opening, basis points")
    tiers: tuple[RateTier, ...] = key_field(
        Key(_DEFAULT_TIERS, _tiers, help="rate tiers by reported EV mileage, km per month")
    )

    def for_mileage(self, km_per_month: int) -> int:
        """The rate of the highest tier whose threshold the mileage reaches."""
        rate = self.tiers[0].rate_bps
        for tier in self.tiers:
            if km_per_month >= tier.min_km_per_month:
                rate = tier.rate_bps
        return rate


@dataclass(frozen=True)
class Holds(_Section):
    _where = "holds"
    default_ttl_ms: int = knob(900_000, 1, 10**12, "hold lifetime when none is asked, ms")
    max_ttl_ms: int = knob(7 * DAY_MS, 1, 10**12, "longest hold lifetime a caller may ask, ms")
    max_active: int = knob(16, 1, 1_000, "live holds per pool")


@dataclass(frozen=True)
class Statement(_Section):
    _where = "statement"
    cycle_days: int = knob(30, 1, 366, "days between statements, counted from opening")
    grace_days: int = knob(20, 0, 365, "days after a statement by which the minimum is due")
    min_payment_bps: int = knob(1000, 0, 10_000, "minimum payment share of revolving principal")
    min_payment_floor_fen: int = knob(10_000, 0, MAX_FEN, "minimum payment at least this, fen")


@dataclass(frozen=True)
class Raises(_Section):
    _where = "raises"
    after_on_time_cycles: int = knob(
        6, 1, 120, "consecutive cycles in good standing before a raise"
    )
    step_bps: int = knob(2000, 0, 10_000, "automatic raise as a share of the limit, bps")


ANY_MERCHANT = "*"
"""In `installments.eligible_merchants`: every merchant a hold names is eligible."""


def _merchants(value: Any) -> tuple[str, ...]:
    """Merchant ids (or "*") whose confirmed purchases become installment plans by themselves."""
    fix = 'write a list of merchant ids such as ["shop-1", "shop-2"], ["*"] for all, [] for none'
    if not isinstance(value, list | tuple):
        raise Invalid("must be an array of strings", fix=fix)
    for i, item in enumerate(value):
        if not isinstance(item, str) or not (item == ANY_MERCHANT or ID_RE.fullmatch(item)):
            raise Invalid(
                f"must be '*' or 1-64 characters of [A-Za-z0-9._-], got {item!r}",
                fix=fix,
                at=f"[{i}]",
            )
    return tuple(value)


@dataclass(frozen=True)
class Installments(_Section):
    _where = "installments"
    periods: int = knob(12, 1, 360, "statements a 0% installment plan is spread over")
    min_amount_fen: int = knob(500_000, 1, MAX_FEN, "smallest draw eligible for a plan, fen")
    automatic: int = knob(
        1, 0, 1, "1: a confirmed hold of min_amount_fen or more at an eligible merchant is a plan"
    )
    eligible_merchants: tuple[str, ...] = key_field(
        Key(
            [ANY_MERCHANT],
            _merchants,
            help="merchants whose large purchases become plans by themselves ('*': any)",
        )
    )

    def automatic_plan(self, merchant: str, amount_fen: int) -> bool:
        """Whether confirming `amount_fen` of a hold at `merchant` makes a plan by itself (the
        user may still opt out): policy on, a named eligible merchant, a large enough amount."""
        if not self.automatic or not merchant or amount_fen < self.min_amount_fen:
            return False
        return ANY_MERCHANT in self.eligible_merchants or merchant in self.eligible_merchants


@dataclass(frozen=True)
class Emergencies(_Section):
    _where = "emergency"
    reserve_bps: int = knob(0, 0, 10_000, "share of the limit only emergency draws may use")
    illness_response_ms: int = knob(15_000, 1, 10**9, "response-time target, illness")
    disaster_response_ms: int = knob(30_000, 1, 10**9, "response-time target, disaster")
    education_response_ms: int = knob(45_000, 1, 10**9, "response-time target, education")
    max_per_day: int = knob(3, 0, 10_000, "emergency draws per pool in any 24 hours")
    max_fen_per_day: int = knob(
        5_000_000, 0, MAX_FEN, "emergency draws per pool in any 24 hours, total fen"
    )

    def response_ms(self, kind: Emergency) -> int:
        value: int = getattr(self, f"{kind.value}_response_ms")
        return value


@dataclass(frozen=True)
class Health(_Section):
    _where = "health"
    boost_fen: int = knob(50_000, 0, MAX_FEN, "limit boost per health goal met, fen")
    max_boost_fen: int = knob(500_000, 0, MAX_FEN, "total health boosts per pool, fen")
    cooldown_ms: int = knob(DAY_MS, 0, 366 * DAY_MS, "least time between two health boosts, ms")
    max_per_week: int = knob(2, 0, 1_000, "health boosts per pool in any 7 days")


@dataclass(frozen=True)
class Mileage(_Section):
    _where = "mileage"
    # Up to ten million: a simulated fleet on a compressed calendar drives that fast in real time.
    max_km_per_day: int = knob(
        1_500, 1, 10_000_000, "most km a vehicle is believed to drive in 24 hours (plausibility)"
    )

    @property
    def max_km_per_month(self) -> int:
        """The largest 30-day mileage believed at all."""
        return self.max_km_per_day * MILEAGE_DAYS


@dataclass(frozen=True)
class LifeStages(_Section):
    _where = "life_stage"
    marriage_bps: int = knob(1000, -10_000, 10_000, "limit change on marriage, bps")
    childbirth_bps: int = knob(1000, -10_000, 10_000, "limit change on childbirth, bps")
    home_purchase_bps: int = knob(1500, -10_000, 10_000, "limit change on a home purchase, bps")
    business_start_bps: int = knob(2000, -10_000, 10_000, "limit change on starting a business")
    retirement_bps: int = knob(-2000, -10_000, 10_000, "limit change on retirement, bps")

    def change_bps(self, event: LifeEvent) -> int:
        value: int = getattr(self, f"{event.value}_bps")
        return value


@dataclass(frozen=True)
class Merchant(_Section):
    """Micro-merchant limits (cloud_bridge/pool/merchant.py): turnover-based, reviewed weekly."""

    _where = "merchant"
    window_days: int = knob(30, 1, 366, "days of reported turnover a review looks back on")
    max_turnover_bps: int = knob(20_000, 0, 100_000, "limit at most this share of the window")
    review_days: int = knob(7, 1, 366, "days between two reviews of a merchant's limit")
    full_history_days: int = knob(90, 1, 3650, "history before the short-history damping ends")
    volatility_penalty_bps: int = knob(5000, 0, 10_000, "limit cut per unit of daily turnover CV")
    min_volatility_factor_bps: int = knob(2500, 0, 10_000, "volatility never cuts below this")
    max_daily_fen: int = knob(100_000_000, 1, MAX_FEN, "largest believable day's turnover, fen")

    @property
    def review_ms(self) -> int:
        return self.review_days * DAY_MS


@dataclass(frozen=True)
class Approval(_Section):
    """Automated approval (cloud_bridge/pool/approval.py): PD bands, limit, rate, device rules."""

    _where = "approval"
    approve_max_pd_bps: int = knob(1500, 0, 10_000, "approve at or below this calibrated PD")
    decline_min_pd_bps: int = knob(3500, 0, 10_000, "decline at or above this PD; refer between")
    max_limit_fen: int = knob(5_000_000, 1, MAX_FEN, "limit of an applicant of PD 0, fen")
    limit_step_fen: int = knob(10_000, 1, MAX_FEN, "approved limits are a multiple of this, fen")
    base_rate_bps: int = knob(900, 0, 10_000, "annual rate of an applicant of PD 0, bps")
    rate_per_pd_pct_bps: int = knob(60, 0, 10_000, "rate added per percent of PD, bps")
    max_rate_bps: int = knob(2400, 0, 10_000, "highest rate an approval may set, bps")
    min_devices: int = knob(1, 0, 100, "enrolled, unrevoked devices needed, else refer")
    trusted_device_days: int = knob(30, 0, 3650, "days enrolled before a device counts as trusted")
    trusted_device_pd_credit_bps: int = knob(100, 0, 10_000, "PD lowered per trusted device")
    max_trusted_devices: int = knob(2, 0, 100, "trusted devices that lower the PD at most")
    refer_risk_freezes: int = knob(1, 1, 1000, "past risk freezes that send an applicant to refer")
    decline_risk_freezes: int = knob(3, 1, 1000, "past risk freezes that decline an applicant")
    max_missing_attributes: int = knob(2, 0, 100, "attributes left blank before a refer")
    top_reasons: int = knob(4, 1, 100, "scorecard reasons given with a decision")


@dataclass(frozen=True)
class Policy:
    """The whole policy. `Policy()` is the default; `load_policy` reads TOML over it."""

    limits: Limits = field(default_factory=Limits)
    rates: Rates = field(default_factory=Rates)
    holds: Holds = field(default_factory=Holds)
    statement: Statement = field(default_factory=Statement)
    raises: Raises = field(default_factory=Raises)
    installments: Installments = field(default_factory=Installments)
    emergency: Emergencies = field(default_factory=Emergencies)
    health: Health = field(default_factory=Health)
    life_stage: LifeStages = field(default_factory=LifeStages)
    mileage: Mileage = field(default_factory=Mileage)
    approval: Approval = field(default_factory=Approval)
    merchant: Merchant = field(default_factory=Merchant)

    def __post_init__(self) -> None:
        if self.limits.min_fen > self.limits.max_fen:
            raise PolicyError(
                "policy key 'limits.min_fen' is above 'limits.max_fen'; fix: make min <= max"
            )
        if self.holds.default_ttl_ms > self.holds.max_ttl_ms:
            raise PolicyError(
                "policy key 'holds.default_ttl_ms' is above 'holds.max_ttl_ms'; "
                "fix: make the default no longer than the maximum"
            )
        if self.approval.approve_max_pd_bps > self.approval.decline_min_pd_bps:
            raise PolicyError(
                "policy key 'approval.approve_max_pd_bps' is above "
                "'approval.decline_min_pd_bps'; fix: approve at a PD no higher than declines"
            )
        if self.statement.grace_days >= self.statement.cycle_days:
            raise PolicyError(
                "policy key 'statement.grace_days' must be below 'statement.cycle_days', so a "
                "payment is due before the next statement; fix: shorten the grace period"
            )

    @property
    def cycle_ms(self) -> int:
        return self.statement.cycle_days * DAY_MS

    @property
    def grace_ms(self) -> int:
        return self.statement.grace_days * DAY_MS


_SECTION_TYPES: dict[str, type[Any]] = {
    "limits": Limits,
    "rates": Rates,
    "holds": Holds,
    "statement": Statement,
    "raises": Raises,
    "installments": Installments,
    "emergency": Emergencies,
    "health": Health,
    "life_stage": LifeStages,
    "mileage": Mileage,
    "approval": Approval,
    "merchant": Merchant,
}

SCHEMA: Schema = {name: keys_of(cls) for name, cls in _SECTION_TYPES.items()}
"""The policy's keys by section, read from the knob declarations of the section classes."""


def policy_from_mapping(data: Mapping[str, Any]) -> Policy:
    """A Policy from parsed TOML: missing keys keep their defaults; unknown keys are errors."""
    try:
        values = read_document(data, SCHEMA)
    except SchemaError as exc:
        raise PolicyError(_message(exc.problem)) from None
    return Policy(**{name: cls(**values[name]) for name, cls in _SECTION_TYPES.items()})


def load_policy(path: str | Path | None = None) -> Policy:
    """The default policy, or the one in the TOML file `path` (missing keys keep defaults)."""
    if path is None:
        return Policy()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"policy file {path} is not valid TOML: {exc}") from exc
    try:
        return policy_from_mapping(data)
    except PolicyError as exc:
        raise PolicyError(f"{path}: {exc}") from None


def describe(policy: Policy | None = None) -> Iterator[tuple[str, int, str]]:
    """(key, value, help) for every scalar knob, in schema order (the CLI and docs print it)."""
    policy = policy or Policy()
    for section, keys in SCHEMA.items():
        body = getattr(policy, section)
        for name, key in keys.items():
            value = getattr(body, name)
            if isinstance(value, int):  # the tiers are an array of tables: to_toml writes them
                yield f"{section}.{name}", value, key.help


def to_toml(policy: Policy | None = None) -> str:
    """The policy as TOML with a comment per key: a complete, loadable starting file."""
    policy = policy or Policy()
    lines: list[str] = []
    current = ""
    for key, value, help_text in describe(policy):
        section, name = key.split(".", 1)
        if section != current:
            lines += ["", f"[{section}]"] if lines else [f"[{section}]"]
            current = section
        lines.append(f"{name} = {value}  # {help_text}")
    merchants = ", ".join(f'"{m}"' for m in policy.installments.eligible_merchants)
    at = lines.index("[installments]") + 1
    while at < len(lines) and lines[at]:
        at += 1
    help_text = keys_of(Installments)["eligible_merchants"].help
    lines.insert(at, f"eligible_merchants = [{merchants}]  # {help_text}")
    for tier in policy.rates.tiers:
        lines += [
            "",
            "[[rates.tiers]]",
            f"min_km_per_month = {tier.min_km_per_month}",
            f"rate_bps = {tier.rate_bps}",
        ]
    return "\n".join(lines) + "\n"

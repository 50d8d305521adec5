"""Credit policy: every rule the engine applies that a credit operator may tune, with its default.

The dataclasses below are the one schema: each knob is declared once, with its default, its range
and a line of help, and the TOML loader, the validation, `cloud-bridge pool policy` and the docs all
read that declaration. Money is integer fen, rates and percentages are basis points (1 bps =
0.01 %), durations are days or milliseconds as named: a float anywhere is refused.

A bad policy fails at load with a `PolicyError` that names the key and says how to fix it.
"""

from __future__ import annotations

import dataclasses
import itertools
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloud_bridge.pool.commands import Emergency, LifeEvent
from cloud_bridge.pool.errors import PolicyError

MAX_FEN = 10**15
DAY_MS = 86_400_000


def knob(default: int, lo: int, hi: int, help: str) -> Any:
    """A policy field: default, inclusive range and a line of help for errors and docs."""
    return field(default=default, metadata={"lo": lo, "hi": hi, "help": help})


class _Section:
    """Range checks from the knob metadata; `_where` is the TOML section name."""

    _where = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if "lo" not in f.metadata:
                continue
            value = getattr(self, f.name)
            key = f"{self._where}.{f.name}"
            if isinstance(value, bool) or not isinstance(value, int):
                raise PolicyError(
                    f"policy key {key!r} must be an integer ({f.metadata['help']}), got "
                    f"{value!r}; fix: write a whole number such as {f.default} (no quotes, "
                    "no decimal point: money is fen, percentages are basis points)"
                )
            lo, hi = f.metadata["lo"], f.metadata["hi"]
            if not lo <= value <= hi:
                raise PolicyError(
                    f"policy key {key!r} must be {lo}..{hi} ({f.metadata['help']}), got "
                    f"{value}; fix: choose a value in range (default {f.default})"
                )


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


@dataclass(frozen=True)
class Rates(_Section):
    _where = "rates"
    base_bps: int = knob(1800, 0, 10_000, "annual interest rate at opening, basis points")
    tiers: tuple[RateTier, ...] = (
        RateTier(0, 1800),
        RateTier(1_500, 1650),
        RateTier(3_000, 1500),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        where = "rates.tiers"
        fix = "; fix: list [[rates.tiers]] tables with ascending min_km_per_month, the first 0"
        if not self.tiers:
            raise PolicyError(f"policy key {where!r} is empty{fix}")
        for i, tier in enumerate(self.tiers):
            for name, value, hi in (
                ("min_km_per_month", tier.min_km_per_month, 1_000_000),
                ("rate_bps", tier.rate_bps, 10_000),
            ):
                if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= hi:
                    raise PolicyError(
                        f"policy key '{where}[{i}].{name}' must be an integer 0..{hi}, "
                        f"got {value!r}{fix}"
                    )
        kms = [t.min_km_per_month for t in self.tiers]
        if kms[0] != 0 or any(a >= b for a, b in itertools.pairwise(kms)):
            raise PolicyError(f"policy key {where!r} has min_km_per_month {kms}{fix}")

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
    after_on_time_cycles: int = knob(6, 1, 120, "consecutive on-time statements before a raise")
    step_bps: int = knob(2000, 0, 10_000, "automatic raise as a share of the limit, bps")


@dataclass(frozen=True)
class Installments(_Section):
    _where = "installments"
    periods: int = knob(12, 1, 360, "statements a 0% installment plan is spread over")
    min_amount_fen: int = knob(500_000, 1, MAX_FEN, "smallest draw eligible for a plan, fen")


@dataclass(frozen=True)
class Emergencies(_Section):
    _where = "emergency"
    reserve_bps: int = knob(0, 0, 10_000, "share of the limit only emergency draws may use")
    illness_response_ms: int = knob(15_000, 1, 10**9, "response-time target, illness")
    disaster_response_ms: int = knob(30_000, 1, 10**9, "response-time target, disaster")
    education_response_ms: int = knob(45_000, 1, 10**9, "response-time target, education")

    def response_ms(self, kind: Emergency) -> int:
        value: int = getattr(self, f"{kind.value}_response_ms")
        return value


@dataclass(frozen=True)
class Health(_Section):
    _where = "health"
    boost_fen: int = knob(50_000, 0, MAX_FEN, "limit boost per health goal met, fen")
    max_boost_fen: int = knob(500_000, 0, MAX_FEN, "total health boosts per pool, fen")


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
}


def policy_from_mapping(data: Mapping[str, Any]) -> Policy:
    """A Policy from parsed TOML: missing keys keep their defaults; unknown keys are errors."""
    sections: dict[str, Any] = {}
    for name, body in data.items():
        cls = _SECTION_TYPES.get(name)
        if cls is None:
            raise PolicyError(
                f"policy has an unknown section [{name}]; fix: use one of "
                f"{', '.join('[' + s + ']' for s in _SECTION_TYPES)}"
            )
        if not isinstance(body, Mapping):
            raise PolicyError(f"policy key {name!r} must be a table; fix: write it as [{name}]")
        known = {f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")}
        kwargs: dict[str, Any] = {}
        for key, value in body.items():
            if key not in known:
                raise PolicyError(
                    f"policy key '{name}.{key}' is unknown; "
                    f"fix: use one of {', '.join(sorted(known))}"
                )
            if name == "rates" and key == "tiers":
                value = _tiers(value)
            kwargs[key] = value
        sections[name] = cls(**kwargs)
    return Policy(**sections)


def _tiers(value: Any) -> tuple[RateTier, ...]:
    fix = "; fix: write [[rates.tiers]] tables with min_km_per_month and rate_bps"
    if not isinstance(value, list):
        raise PolicyError(f"policy key 'rates.tiers' must be an array of tables{fix}")
    tiers = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping) or set(item) != {"min_km_per_month", "rate_bps"}:
            raise PolicyError(f"policy key 'rates.tiers[{i}]' must have exactly the keys{fix[6:]}")
        tiers.append(RateTier(item["min_km_per_month"], item["rate_bps"]))
    return tuple(tiers)


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
    for section in dataclasses.fields(policy):
        body = getattr(policy, section.name)
        for f in dataclasses.fields(body):
            if "help" in f.metadata:
                yield f"{section.name}.{f.name}", getattr(body, f.name), f.metadata["help"]


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
    for tier in policy.rates.tiers:
        lines += [
            "",
            "[[rates.tiers]]",
            f"min_km_per_month = {tier.min_km_per_month}",
            f"rate_bps = {tier.rate_bps}",
        ]
    return "\n".join(lines) + "\n"

"""Result codes: every command ends with exactly one. Only `OK` changes what the command asked for.

Codes are short, stable, lower-case strings (metrics labels, MQTT decisions, CLI output). Never
rename one; add. As in TigerBeetle, an expected refusal is a value, not an exception, and it is
recorded under the command's idempotency key like a success, so a retry returns the same answer.
"""

from __future__ import annotations

import enum


class Result(enum.StrEnum):
    """The outcome of one command."""

    OK = "ok"
    # Identity and lifecycle
    POOL_NOT_FOUND = "pool_not_found"
    POOL_EXISTS = "pool_exists"
    POOL_CLOSED = "pool_closed"
    POOL_FROZEN = "pool_frozen"
    ALREADY_FROZEN = "already_frozen"
    NOT_FROZEN = "not_frozen"
    HAS_BALANCE = "has_balance"
    KEY_REUSED = "key_reused"
    # Money
    EXCEEDS_CREDIT = "exceeds_credit"
    EXCEEDS_DEBT = "exceeds_debt"
    BELOW_MIN_DRAW = "below_min_draw"
    INSTALLMENTS_NOT_ELIGIBLE = "installments_not_eligible"
    # Limits and rates
    LIMIT_OUT_OF_RANGE = "limit_out_of_range"
    LIMIT_BELOW_USAGE = "limit_below_usage"
    BOOST_CAP_REACHED = "boost_cap_reached"
    # Holds
    HOLD_EXISTS = "hold_exists"
    HOLD_NOT_FOUND = "hold_not_found"
    HOLD_TTL_TOO_LONG = "hold_ttl_too_long"
    TOO_MANY_HOLDS = "too_many_holds"
    EXCEEDS_HOLD = "exceeds_hold"
    # Trigger limits (pool/limits.py): what a device, even a compromised one, may ask for
    TOO_MANY_EMERGENCIES = "too_many_emergencies"
    EXCEEDS_EMERGENCY_BUDGET = "exceeds_emergency_budget"
    BOOST_COOLDOWN = "boost_cooldown"
    TOO_MANY_BOOSTS = "too_many_boosts"
    IMPLAUSIBLE_MILEAGE = "implausible_mileage"
    # Merchant turnover reports (pool/merchant.py)
    TURNOVER_ALREADY_REPORTED = "turnover_already_reported"
    TURNOVER_DAY_OUT_OF_WINDOW = "turnover_day_out_of_window"
    IMPLAUSIBLE_TURNOVER = "implausible_turnover"

    @property
    def ok(self) -> bool:
        return self is Result.OK

"""Checks: each takes one parsed TOML value and returns it (coerced) or raises `Invalid`.

A check is any callable `value -> value`. Its `Invalid.reason` completes the sentence
``[section] key = <value> ...`` ("must be an integer from 5 to 3600"), so it never repeats the
key or the value. The checks here accept their own output (coercions are idempotent), as a
check must when `check_fields` runs it again on a dataclass's already-checked fields.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

Check = Callable[[Any], Any]
"""A validator: returns the value to use, or raises Invalid."""


class Invalid(ValueError):
    """A value a check refuses.

    `reason` completes "<key> = <value> ..."; `fix`, when given, replaces the key's example in
    the message; `at` locates the offending part of a compound value ("[0]", "[2].rate_bps").
    """

    def __init__(self, reason: str, *, fix: str = "", at: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.fix = fix
        self.at = at


def is_integer(value: Any) -> bool:
    """True for an int that is not a bool (TOML has both; `true` is no number)."""
    return isinstance(value, int) and not isinstance(value, bool)


def integer(lo: int, hi: int) -> Check:
    """An integer from `lo` to `hi` inclusive; a float or a bool is refused."""

    def check(value: Any) -> int:
        if not is_integer(value) or not lo <= value <= hi:
            raise Invalid(f"must be an integer from {lo} to {hi}")
        return int(value)

    return check


def number(lo: float, hi: float) -> Check:
    """A number (integer or float) from `lo` to `hi` inclusive, returned as a float."""

    def check(value: Any) -> float:
        if not (is_integer(value) or isinstance(value, float)) or not lo <= value <= hi:
            raise Invalid(f"must be a number from {lo} to {hi}")
        return float(value)

    return check


def choice(*values: str) -> Check:
    """One of `values`, listed in the message in the order given."""

    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in values:
            raise Invalid(f"must be one of {', '.join(values)}")
        return value

    return check


def text(value: Any) -> str:
    """Any string, the empty one included."""
    if not isinstance(value, str):
        raise Invalid("must be a string")
    return value


def path(value: Any) -> str:
    """A non-empty path string (resolving it is the loader's job: it knows the base)."""
    if not isinstance(value, str) or not value:
        raise Invalid("must be a non-empty path string")
    return value


def boolean(value: Any) -> bool:
    """TOML true or false."""
    if not isinstance(value, bool):
        raise Invalid("must be true or false")
    return value


def matching(pattern: re.Pattern[str], rule: str, *, allow_empty: bool = False) -> Check:
    """A string matching `pattern` in full (described to people as `rule`), or "" if allowed."""
    wanted = f"must be {rule}" + (" or empty" if allow_empty else "")

    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise Invalid(wanted)
        if value == "" and allow_empty:
            return value
        if not pattern.fullmatch(value):
            raise Invalid(wanted)
        return value

    return check


def mqtt_url(value: Any) -> str:
    """mqtt://host[:port] or mqtts://host[:port], with a numeric port if one is given."""
    if not isinstance(value, str):
        raise Invalid("must be a string")
    parts = urlsplit(value)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise Invalid("must look like mqtt://host:1883 or mqtts://host:8883")
    try:
        parts.port  # noqa: B018 - raises on a non-numeric or out-of-range port
    except ValueError as exc:
        raise Invalid("has a port that is not a number") from exc
    return value

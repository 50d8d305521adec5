"""Batch queries: how many values one statement binds, and its placeholders. Defined once for
every repository of the store."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

CHUNK = 250
"""Values per query. A value may be a pair (device id and seq: two parameters), so a chunk binds
at most 500 parameters, under the 999 of SQLite before 3.32 and far under PostgreSQL's 65,535."""


def chunks(values: Sequence[T]) -> Iterator[Sequence[T]]:
    """`values` in slices of at most CHUNK."""
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def marks(count: int) -> str:
    """`?, ?, ...`: `count` qmark placeholders."""
    return ", ".join("?" * count)

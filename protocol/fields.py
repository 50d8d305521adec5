"""Field types of the message schema: each checks one decoded CBOR value and names the problem.

A field type is a small frozen object with `check(value) -> value`, raising ValueError with a
message for people; protocol.messages turns that into ProtocolError(BAD_FIELD) naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protocol import packed
from protocol.names import ID_RULE, is_id

UINT64_MAX = (1 << 64) - 1
INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1


def _is_int(value: object) -> bool:
    return type(value) is int or (isinstance(value, int) and not isinstance(value, bool))


@dataclass(frozen=True)
class UInt:
    """Unsigned integer, at most `max`."""

    max: int = UINT64_MAX

    def check(self, value: Any) -> int:
        if not _is_int(value) or not 0 <= value <= self.max:
            raise ValueError(f"must be an unsigned integer <= {self.max}")
        return int(value)


@dataclass(frozen=True)
class Int:
    """Signed 64-bit integer."""

    def check(self, value: Any) -> int:
        if not _is_int(value) or not INT64_MIN <= value <= INT64_MAX:
            raise ValueError("must be a signed 64-bit integer")
        return int(value)


@dataclass(frozen=True)
class IntRange:
    """Signed integer from `min` to `max`."""

    min: int
    max: int

    def check(self, value: Any) -> int:
        if not _is_int(value) or not self.min <= value <= self.max:
            raise ValueError(f"must be an integer from {self.min} to {self.max}")
        return int(value)


@dataclass(frozen=True)
class Bool:
    def check(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value


@dataclass(frozen=True)
class Text:
    """UTF-8 text of 0-`max_len` characters."""

    max_len: int = 64

    def check(self, value: Any) -> str:
        if not isinstance(value, str) or len(value) > self.max_len:
            raise ValueError(f"must be text of at most {self.max_len} characters")
        return value


@dataclass(frozen=True)
class Id:
    """An id of the topic tree (protocol.names.ID_PATTERN)."""

    def check(self, value: Any) -> str:
        if not is_id(value):
            raise ValueError(f"must be {ID_RULE}")
        return value


@dataclass(frozen=True)
class Choice:
    """One of a fixed set of text values."""

    values: frozenset[str]

    def check(self, value: Any) -> str:
        if (
            not isinstance(value, str) or value not in self.values
        ):  # type first: lists are unhashable
            raise ValueError(f"must be one of {', '.join(sorted(self.values))}")
        return value


@dataclass(frozen=True)
class Bytes:
    """Byte string of `min_len`-`max_len` bytes."""

    min_len: int = 0
    max_len: int = 64

    def check(self, value: Any) -> bytes:
        if not isinstance(value, bytes) or not self.min_len <= len(value) <= self.max_len:
            if self.min_len == self.max_len:
                raise ValueError(f"must be {self.max_len} bytes")
            raise ValueError(f"must be {self.min_len}-{self.max_len} bytes")
        return value


@dataclass(frozen=True)
class TextList:
    """Array of at most `max_items` texts of at most `max_len` characters."""

    max_items: int = 16
    max_len: int = 64

    def check(self, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list | tuple) or len(value) > self.max_items:
            raise ValueError(f"must be an array of at most {self.max_items} texts")
        for item in value:
            if not isinstance(item, str) or len(item) > self.max_len:
                raise ValueError(f"items must be text of at most {self.max_len} characters")
        return tuple(value)


@dataclass(frozen=True)
class IntMap:
    """Map with unsigned (`key_max`) or text keys and signed 64-bit integer values."""

    text_keys: bool = False
    key_max: int = 23
    max_items: int = 32

    def check(self, value: Any) -> dict[Any, int]:
        if not isinstance(value, dict) or len(value) > self.max_items:
            raise ValueError(f"must be a map of at most {self.max_items} entries")
        for key, item in value.items():
            if self.text_keys:
                if type(key) is not str or not is_id(key):
                    raise ValueError("keys must be ids (A-Z a-z 0-9 . _ -)")
            elif type(key) is not int or not 0 <= key <= self.key_max:
                raise ValueError(f"keys must be integers 0..{self.key_max}")
            if type(item) is not int or not INT64_MIN <= item <= INT64_MAX:
                raise ValueError("values must be signed 64-bit integers")
        return value if type(value) is dict else dict(value)


@dataclass(frozen=True)
class PackedIntMap:
    """A map of the keys 0..max_items-1 to signed 64-bit integers (a report's fingerprint).
    Written packed (protocol.packed) when its keys are exactly 0..n-1, else as a CBOR map;
    read in either form, so the maps of devices older than the packed form still read."""

    max_items: int = 24

    def check(self, value: Any) -> dict[int, int]:
        if isinstance(value, bytes):
            value = packed.unpack(value, self.max_items)
        return IntMap(key_max=self.max_items - 1, max_items=self.max_items).check(value)

    def to_wire(self, value: dict[int, int]) -> bytes | dict[int, int]:
        """The CBOR value written: the packed bytes, or the map when it has gaps."""
        return packed.pack(value) if packed.packable(value, self.max_items) else value


@dataclass(frozen=True)
class TextMap:
    """Map with id keys and text values of at most `max_len` characters."""

    max_items: int = 16
    max_len: int = 64

    def check(self, value: Any) -> dict[str, str]:
        if not isinstance(value, dict) or len(value) > self.max_items:
            raise ValueError(f"must be a map of at most {self.max_items} entries")
        for key, item in value.items():
            if not is_id(key):
                raise ValueError("keys must be ids (A-Z a-z 0-9 . _ -)")
            if not isinstance(item, str) or len(item) > self.max_len:
                raise ValueError(f"values must be text of at most {self.max_len} characters")
        return dict(value)


@dataclass(frozen=True)
class Args:
    """Command arguments: text keys, values int, text, bytes or bool."""

    max_items: int = 16

    def check(self, value: Any) -> dict[str, int | str | bytes | bool]:
        if not isinstance(value, dict) or len(value) > self.max_items:
            raise ValueError(f"must be a map of at most {self.max_items} entries")
        out: dict[str, int | str | bytes | bool] = {}
        for key, item in value.items():
            if not is_id(key):
                raise ValueError("keys must be ids (A-Z a-z 0-9 . _ -)")
            if isinstance(item, bool):
                out[key] = item
            elif _is_int(item):
                out[key] = Int().check(item)
            elif isinstance(item, str):
                out[key] = Text(512).check(item)
            elif isinstance(item, bytes):
                out[key] = Bytes(0, 1024).check(item)
            else:
                raise ValueError("values must be integers, text, bytes or booleans")
        return out


@dataclass(frozen=True)
class Scalars:
    """Map with id keys and values that are signed 64-bit integers or text of at most
    `max_len` characters (the data of a pool event)."""

    max_items: int = 24
    max_len: int = 128

    def check(self, value: Any) -> dict[str, int | str]:
        if not isinstance(value, dict) or len(value) > self.max_items:
            raise ValueError(f"must be a map of at most {self.max_items} entries")
        out: dict[str, int | str] = {}
        for key, item in value.items():
            if not is_id(key):
                raise ValueError("keys must be ids (A-Z a-z 0-9 . _ -)")
            if _is_int(item):
                out[key] = Int().check(item)
            elif isinstance(item, str) and len(item) <= self.max_len:
                out[key] = item
            else:
                raise ValueError(
                    f"values must be integers or text of at most {self.max_len} characters"
                )
        return out


FieldType = (
    UInt
    | Int
    | IntRange
    | Bool
    | Text
    | Id
    | Choice
    | Bytes
    | TextList
    | IntMap
    | PackedIntMap
    | TextMap
    | Args
    | Scalars
)

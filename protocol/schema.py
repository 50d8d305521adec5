"""The schema machinery of the wire messages: records whose fields carry a CBOR map key and a
field type (protocol.fields). A record validates itself on construction, encodes to a map that
leaves out optional fields holding their default, and builds itself from a decoded map.

Per-class tables (keys, checks, defaults) are computed once and cached: construction and
encoding run for every message on the bridge's hot path.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from protocol import cbor
from protocol.errors import ProtocolError, Reason

_REQUIRED = object()


def field(key: int, typ: Any, default: Any = _REQUIRED) -> Any:
    """A CBOR field of a record: its map key, its field type (check) and its default."""
    meta = {"cbor": key, "type": typ}
    if default is _REQUIRED:
        return dataclasses.field(metadata=meta)
    if isinstance(default, dict):
        return dataclasses.field(default_factory=dict, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


Schema = tuple[tuple[int, str, Any, bool], ...]
_SCHEMAS: dict[type, Schema] = {}
_DEFAULTS: dict[type, dict[str, Any]] = {}


def _schema(cls: type) -> Schema:
    """(key, attribute, field type, required) per CBOR field of a record class, cached."""
    schema = _SCHEMAS.get(cls)
    if schema is None:
        rows = []
        for f in dataclasses.fields(cls):
            if "cbor" in f.metadata:
                required = f.default is dataclasses.MISSING and (
                    f.default_factory is dataclasses.MISSING
                )
                rows.append((f.metadata["cbor"], f.name, f.metadata["type"], required))
        schema = _SCHEMAS[cls] = tuple(rows)
    return schema


_KEYS: dict[type, frozenset[int]] = {}


def _keys(cls: type) -> frozenset[int]:
    """The CBOR keys a record class knows, cached."""
    keys = _KEYS.get(cls)
    if keys is None:
        keys = _KEYS[cls] = frozenset(key for key, _n, _t, _r in _schema(cls))
    return keys


_CHECKS: dict[type, tuple[tuple[str, Any], ...]] = {}


def _checks(cls: type) -> tuple[tuple[str, Any], ...]:
    """(attribute, bound check) per CBOR field of a record class, cached: construction runs
    these for every message on the bridge's hot path."""
    checks = _CHECKS.get(cls)
    if checks is None:
        checks = _CHECKS[cls] = tuple((name, typ.check) for _k, name, typ, _r in _schema(cls))
    return checks


def _defaults(cls: type) -> dict[str, Any]:
    """Default value per optional field of a record class, cached."""
    defaults = _DEFAULTS.get(cls)
    if defaults is None:
        defaults = {}
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                defaults[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                defaults[f.name] = f.default_factory()
        _DEFAULTS[cls] = defaults
    return defaults


class Record:
    """Shared machinery: validate on construction, encode to a map, decode from one."""

    def __post_init__(self) -> None:
        for name, check in _checks(type(self)):
            value = getattr(self, name)
            try:
                checked = check(value)
            except ValueError as exc:
                raise ProtocolError(
                    Reason.BAD_FIELD, f"{type(self).__name__}.{name} {exc}"
                ) from exc
            if checked is not value:
                object.__setattr__(self, name, checked)

    def to_map(self) -> dict[int, Any]:
        """The CBOR map; optional fields that hold their default are left out."""
        out: dict[int, Any] = {}
        defaults = _defaults(type(self))
        for key, name, typ, required in _schema(type(self)):
            value = getattr(self, name)
            if not required and value == defaults[name]:
                continue
            if getattr(typ, "nested", False):  # a record inside the record
                value = value.to_map()
            elif hasattr(typ, "to_wire"):  # a value with a wire form of its own
                value = typ.to_wire(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[key] = value
        return out

    @classmethod
    def _kwargs(cls, data: dict[Any, Any]) -> dict[str, Any]:
        """Constructor arguments from a decoded map (`cbor.loads(..., plain=False)`). Keys the
        record does not know are ignored (a newer minor revision), but their values must still
        be plain CBOR: a float, tag, undefined or other simple value under one is BAD_CBOR
        (docs/protocol.md section 3); under a known key the field's type refuses it."""
        for key in data.keys() - _keys(cls):
            cbor.plain(data[key], 1)
        kwargs: dict[str, Any] = {}
        for key, name, typ, required in _schema(cls):
            if key not in data:
                if required:
                    raise ProtocolError(
                        Reason.MISSING_FIELD, f"{cls.__name__}.{name} (key {key}) is missing"
                    )
                continue
            value = data[key]
            if getattr(typ, "nested", False):
                value = typ.decode(value, data)
            kwargs[name] = value
        return kwargs

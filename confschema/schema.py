"""Keys, sections and the reader: declare each configuration key once, read TOML against it.

A `Key` holds a key's default, its check, an example line to suggest and a line of help. A
section is a mapping of key names to keys; a schema is a mapping of section names to sections.
The reader fills every missing key from its default (checked like a given value), refuses
unknown sections and keys, and reports the first problem as a `SchemaError` carrying a typed
`Problem` (which section, key and value, what is wrong, the fix), so each program can word it in
its own house style; `Problem.message` is the style of agent.toml and bridge.toml:

    [mqtt] keepalive_s = 2 must be an integer from 5 to 3600; for example: keepalive_s = 30

Frozen dataclasses can declare their fields with `key_field(Key(...))`; `keys_of(cls)` reads the
section back from the fields and `check_fields(obj, section)` validates an instance built
directly, so one declaration serves the TOML reader, the constructor, the docs and the CLI.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from confschema.checks import Check, Invalid


class _Required(enum.Enum):
    REQUIRED = "required"


REQUIRED: Final = _Required.REQUIRED
"""The default of a key that has none: the file must give it."""


@dataclass(frozen=True)
class Key:
    """One configuration key.

    `default` is the value as it would be written in TOML (checked like a given value), or
    REQUIRED. `example` is the line suggested in errors (default: ``<key> = <default>``);
    `help` is a line for docs and generated files; `attr` names the attribute the key fills
    when that differs from the key's own name.
    """

    default: Any
    check: Check
    example: str = ""
    help: str = ""
    attr: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def value(self) -> Any:
        """The default after its check: what a program gets when the file leaves the key out."""
        if self.required:
            raise LookupError("a required key has no default value")
        return self.check(self.default)

    def example_for(self, name: str) -> str:
        """The example line for this key under the name `name`."""
        return self.example or f"{name} = {toml_value(self.default)}"


Section = Mapping[str, Key]
Schema = Mapping[str, Section]


class Fault(enum.Enum):
    """What is wrong with a document."""

    UNKNOWN_SECTION = "unknown_section"
    NOT_A_TABLE = "not_a_table"
    UNKNOWN_KEY = "unknown_key"
    REQUIRED = "required"
    INVALID = "invalid"


@dataclass(frozen=True)
class Problem:
    """The first thing wrong with a document, with everything a message needs.

    `section` is the section's name ("mqtt"); `label` is how a message shows it ("[mqtt]",
    "[[triggers.rule]] milk-low"). `key` carries the check's location inside a compound value
    ("tiers[0]"). `fix` is the check's own advice or the key's example line. `known` lists the
    sections or keys there are, for an unknown one.
    """

    fault: Fault
    section: str
    label: str
    key: str = ""
    value: Any = None
    reason: str = ""
    fix: str = ""
    known: tuple[str, ...] = ()

    def message(self) -> str:
        """One line naming the section, the key, the value and the fix."""
        if self.fault is Fault.UNKNOWN_SECTION:
            return f"unknown section [{self.section}]; sections: {', '.join(self.known)}"
        if self.fault is Fault.NOT_A_TABLE:
            return f"{self.label} must be a table"
        if self.fault is Fault.UNKNOWN_KEY:
            return f"{self.label} {self.key}: unknown key; known: {', '.join(self.known)}"
        if self.fault is Fault.REQUIRED:
            return f"{self.label} {self.key} is required; add: {self.fix}"
        return f"{self.label} {self.key} = {self.value!r} {self.reason}; for example: {self.fix}"


class SchemaError(ValueError):
    """A document does not fit its schema; `problem` says how, `str()` is `problem.message()`."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message())
        self.problem = problem


def check_value(key: Key, name: str, value: Any, section: str, label: str = "") -> Any:
    """`key.check(value)`, with a refusal raised as SchemaError(Problem(INVALID))."""
    try:
        return key.check(value)
    except Invalid as exc:
        raise SchemaError(
            Problem(
                Fault.INVALID,
                section,
                label or f"[{section}]",
                key=name + exc.at,
                value=value,
                reason=exc.reason,
                fix=exc.fix or key.example_for(name),
            )
        ) from None


def read_section(table: Any, keys: Section, section: str, label: str = "") -> dict[str, Any]:
    """Every key of `keys` from the TOML table `table`, checked; missing ones take defaults."""
    label = label or f"[{section}]"
    if not isinstance(table, Mapping):
        raise SchemaError(Problem(Fault.NOT_A_TABLE, section, label))
    unknown = sorted(set(table) - set(keys))
    if unknown:
        raise SchemaError(
            Problem(Fault.UNKNOWN_KEY, section, label, key=unknown[0], known=tuple(keys))
        )
    out: dict[str, Any] = {}
    for name, key in keys.items():
        if name in table:
            out[name] = check_value(key, name, table[name], section, label)
        elif key.required:
            raise SchemaError(
                Problem(Fault.REQUIRED, section, label, key=name, fix=key.example_for(name))
            )
        else:
            out[name] = check_value(key, name, key.default, section, label)
    return out


def read_document(
    doc: Mapping[str, Any], schema: Schema, *, other: tuple[str, ...] = ()
) -> dict[str, dict[str, Any]]:
    """Every section of `schema` read from `doc`. Sections named in `other` are allowed and
    left to the caller (such as arrays of tables); any other unknown section is refused."""
    unknown = sorted(set(doc) - set(schema) - set(other))
    if unknown:
        raise SchemaError(
            Problem(
                Fault.UNKNOWN_SECTION,
                unknown[0],
                f"[{unknown[0]}]",
                known=(*schema, *other),
            )
        )
    return {name: read_section(doc.get(name, {}), keys, name) for name, keys in schema.items()}


# ---- keys declared as dataclass fields ---------------------------------------------------------

_META: Final = "confschema.key"


def key_field(key: Key) -> Any:
    """A dataclass field declared by `key`: its default is `key.value`, and the key rides along
    in the field's metadata for `keys_of` and `check_fields`."""
    return dataclasses.field(default=key.value, metadata={_META: key})


def keys_of(cls: type[Any]) -> dict[str, Key]:
    """The section a dataclass declares with `key_field`, in field order."""
    return {f.name: f.metadata[_META] for f in dataclasses.fields(cls) if _META in f.metadata}


def check_fields(obj: Any, section: str) -> None:
    """Check every `key_field` of a dataclass instance (built directly, not read from TOML)."""
    for name, key in keys_of(type(obj)).items():
        check_value(key, name, getattr(obj, name), section)


# ---- docs and generated files ------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One key of a schema as docs and generated files show it."""

    section: str
    key: str
    default: Any
    help: str
    example: str
    required: bool


def describe(schema: Schema) -> Iterator[Entry]:
    """Every key of `schema`, in declaration order."""
    for section, keys in schema.items():
        for name, key in keys.items():
            yield Entry(
                section,
                name,
                None if key.required else key.default,
                key.help,
                key.example_for(name),
                key.required,
            )


def to_toml(schema: Schema) -> str:
    """A file with every section and key at its default, help as comments. A required key is
    written commented out, as its example: fill it in and the file loads."""
    lines: list[str] = []
    for section, keys in schema.items():
        lines += ["", f"[{section}]"] if lines else [f"[{section}]"]
        for name, key in keys.items():
            note = f"  # {key.help}" if key.help else ""
            if key.required:
                lines.append(f"# {key.example_for(name)}  (required){note}")
            else:
                lines.append(f"{name} = {toml_value(key.default)}{note}")
    return "\n".join(lines) + "\n"


def toml_value(value: Any) -> str:
    """`value` written as TOML: strings, booleans, numbers, arrays and inline tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {value!r}")


def _toml_string(value: str) -> str:
    """A TOML basic string: quotes and backslashes escaped, control characters as \\uXXXX."""
    out = []
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'

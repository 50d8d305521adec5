"""The CDDL of docs/protocol.md, checked by two independent CDDL validators.

The document stays the single source: the fenced ```cddl blocks are extracted from it as they
are. Every check asks both validators, and an item passes only if both accept it:

- cddl-verifier (pure Python, RFC 8610 and RFC 9682 in full) reads the document's CDDL as it is;
- pycddl (cddl-rs 0.9 inside) misreads a few constructs, so `adapt` rewrites them first. It is
  also too lenient in places: it accepts a map where `uint` is expected, a byte string for an
  integer range and text for `bstr .size`; cddl-verifier refuses those (tests/tools/
  test_contract.py has a case of each), which is why one validator alone is not enough.

The three rewrites for cddl-rs, each into what RFC 8610 says the construct means or into a
weaker rule whose stronger part is checked separately here:

1. `.regexp "P"` is an XSD regular expression, which matches the whole text (RFC 8610 section
   3.8.3); cddl-rs searches for it anywhere. The pattern is anchored: `^(?:P)$`.
2. A map-key type with a control or a range (`{ * id => int64 }`) is checked by cddl-rs against
   the map itself, so every such map fails. Key types are relaxed to their base type
   (`KEY_BASE_TYPES`); protocol.messages still checks the keys.
3. `bstr .cbor T` inside an array is applied by cddl-rs to the wrong items. The envelope rule is
   checked with plain `bstr` there, and the embedded protected header and payload are checked
   against their own rules (`check_envelope`).
4. cddl-rs panics when it compares a byte string with a text literal, as it does trying a
   report's packed fingerprint (a bstr under key 14) against Birth's `14 => device_kind`
   before it gets to Report. The order of a type choice means nothing in CDDL, so `Message`
   lists Report first for cddl-rs (`_REPORT_FIRST`).

    python -m tools.contract.cddl     every vector of tests/vectors/project.json against the CDDL
"""

from __future__ import annotations

import enum
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cbor2
import pycddl
from cddl_verifier import SchemaError, Validator

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL_DOC = ROOT / "docs" / "protocol.md"
VECTORS = ROOT / "tests" / "vectors" / "project.json"

ENVELOPE_RULE = "COSE_Sign1_Tagged"
PROTECTED_RULE = "protected_header"
MESSAGE_RULE = "Message"
_ROOT_RULE = "contract-root"  # a rule name the document never uses ("-" is legal in CDDL)

KEY_BASE_TYPES = {"id": "tstr", "small_key": "uint"}
"""Map-key types with a control or range, and the base type the validator is given instead."""

NOT_SCHEMA_MATTERS = {
    "ack-indefinite-device": "an indefinite-length text: CDDL describes values, not how they "
    "are encoded; deterministic encoding (docs/protocol.md section 3) refuses it",
}
"""Refused vectors whose refusal CDDL cannot express, by name, with why."""

_FENCE = re.compile(r"^```cddl\n(.*?)^```", re.S | re.M)
_RULE_NAME = re.compile(r"^([A-Za-z@_$][\w@.$-]*)\s*(?:<[^>]*>)?\s*=", re.M)
_REGEXP = re.compile(r'\.regexp "((?:[^"\\]|\\.)*)"')
_STAR_KEY = re.compile(r"(\*\s*\d*\s+|\*)([A-Za-z_][\w-]*)(\s*=>)")  # `* k =>`, `0*32 k =>`
_EMBEDDED = re.compile(r"bstr\s+\.cbor\s+[A-Za-z_][\w-]*")
_REPORT_FIRST = (
    "Message = Birth / Death / Report / Trigger /",
    "Message = Report / Birth / Death / Trigger /",
)
_PRELUDE_KEYS = frozenset({"uint", "int", "nint", "tstr", "text", "bstr", "bytes", "any"})


class ContractError(Exception):
    """The document's CDDL cannot be used as it stands; the message says what to change."""


def extract(markdown: str) -> str:
    """The CDDL of a Markdown document: its fenced ```cddl blocks, in order."""
    blocks = _FENCE.findall(markdown)
    if not blocks:
        raise ContractError("no ```cddl blocks found")
    return "\n".join(blocks)


def adapt(cddl: str) -> str:
    """The CDDL as cddl-rs reads it correctly (the module docstring says what and why)."""
    out = _REGEXP.sub(lambda m: f'.regexp "^(?:{m.group(1)})$"', cddl)

    def key(m: re.Match[str]) -> str:
        name = m.group(2)
        if name in _PRELUDE_KEYS:
            return m.group(0)
        if name not in KEY_BASE_TYPES:
            raise ContractError(
                f"map-key type {name!r} in the CDDL: add it with its base type to "
                "KEY_BASE_TYPES in tools/contract/cddl.py (cddl-rs misreads controls on key types)"
            )
        return f"{m.group(1)}{KEY_BASE_TYPES[name]}{m.group(3)}"

    out = _STAR_KEY.sub(key, out)
    if f"{MESSAGE_RULE} = " in out and _REPORT_FIRST[0] not in out:
        raise ContractError(f"the CDDL no longer says {_REPORT_FIRST[0]!r}: update _REPORT_FIRST")
    out = out.replace(*_REPORT_FIRST)
    return _EMBEDDED.sub("bstr", out)


@dataclass
class Cddl:
    """The contract's CDDL with a validator per root rule."""

    source: str
    _adapted: str = field(init=False, repr=False)
    _schemas: dict[str, pycddl.Schema] = field(default_factory=dict, init=False, repr=False)
    _verifier: Validator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._adapted = adapt(self.source)
        try:
            self._verifier = Validator(self.source)
        except SchemaError as exc:
            raise ContractError(f"the CDDL does not parse: {exc}") from exc

    @classmethod
    def from_doc(cls, path: Path = PROTOCOL_DOC) -> Cddl:
        return cls(extract(path.read_text(encoding="utf-8")))

    @property
    def rules(self) -> frozenset[str]:
        """Names of the rules the CDDL defines."""
        return frozenset(_RULE_NAME.findall(self.source))

    def schema(self, rule: str) -> pycddl.Schema:
        """A validator whose root is `rule` (cddl-rs validates against the first rule)."""
        if rule not in self.rules:
            raise ContractError(
                f"docs/protocol.md defines no CDDL rule {rule!r}: add it to a ```cddl block "
                "of section 2 or 3"
            )
        schema = self._schemas.get(rule)
        if schema is None:
            try:
                schema = pycddl.Schema(f"{_ROOT_RULE} = {rule}\n{self._adapted}")
            except Exception as exc:  # pycddl raises a bare ValueError with the parser's report
                raise ContractError(f"the CDDL does not parse: {exc}") from exc
            self._schemas[rule] = schema
        return schema

    def check(self, rule: str, data: bytes) -> str | None:
        """None if both validators find that the CBOR item `data` matches `rule`, else what
        each one that refused it reported."""
        reports = [
            r for r in (self._check_pycddl(rule, data), self._check_verifier(rule, data)) if r
        ]
        return " | ".join(reports) or None

    def _check_pycddl(self, rule: str, data: bytes) -> str | None:
        try:
            self.schema(rule).validate_cbor(data)
        except ContractError:
            raise
        except Exception as exc:  # pycddl.ValidationError, or a panic turned into an exception
            return f"pycddl: {str(exc).strip()}"
        except BaseException as exc:  # pyo3's PanicException derives from BaseException
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            return f"pycddl crashed: {exc}"
        return None

    def _check_verifier(self, rule: str, data: bytes) -> str | None:
        result = self._verifier.validate(data, root_type=rule)
        if result.valid:
            return None
        found = "; ".join(f"{d.path_text or '/'}: {d.message}" for d in result.diagnostics[:3])
        return f"cddl-verifier: {found}"

    def check_envelope(self, envelope: bytes, kind_rule: str | None) -> list[str]:
        """Every failure of a signed message: the envelope, its protected header, its payload
        as a `Message` and, with `kind_rule`, as that kind. Empty when all match."""
        failures = []
        error = self.check(ENVELOPE_RULE, envelope)
        if error:
            failures.append(f"{ENVELOPE_RULE}: {error}")
        try:
            item = cbor2.loads(envelope)
            protected, _unprotected, payload, _signature = item.value
        except (ValueError, TypeError, AttributeError, cbor2.CBORDecodeError) as exc:
            return [*failures, f"not a COSE_Sign1 to look into: {exc}"]
        error = self.check(PROTECTED_RULE, protected)
        if error:
            failures.append(f"{PROTECTED_RULE}: {error}")
        failures.extend(self.check_payload(payload, kind_rule))
        return failures

    def check_payload(self, payload: bytes, kind_rule: str | None) -> list[str]:
        """Every failure of a payload against `Message` and, with `kind_rule`, that kind."""
        failures = []
        for rule in (MESSAGE_RULE, kind_rule):
            if rule is None:
                continue
            error = self.check(rule, payload)
            if error:
                failures.append(f"{rule}: {error}")
        return failures


class Expect(enum.Enum):
    """What the CDDL should say about a vector."""

    VALID = "valid"
    INVALID = "invalid"
    NOT_SCHEMA = "not a schema matter"  # either answer is right (NOT_SCHEMA_MATTERS)


@dataclass(frozen=True)
class VectorResult:
    """One vector checked: what was expected and every failure the validator reported."""

    name: str
    expected: Expect
    failures: tuple[str, ...]

    @property
    def ok(self) -> bool:
        if self.expected is Expect.VALID:
            return not self.failures
        if self.expected is Expect.INVALID:
            return bool(self.failures)
        return True


def check_vectors(cddl: Cddl, vectors: dict[str, Any]) -> list[VectorResult]:
    """Accepted message vectors must match; refused ones must not (unless CDDL cannot say so,
    NOT_SCHEMA_MATTERS); the bare COSE vectors must have a valid protected header."""
    results = []
    for vec in vectors["messages"]:
        failures = cddl.check_envelope(bytes.fromhex(vec["envelope"]), vec["kind"])
        failures += [
            f"payload field: {f}"
            for f in cddl.check_payload(bytes.fromhex(vec["payload"]), vec["kind"])
        ]
        results.append(VectorResult(vec["name"], Expect.VALID, tuple(failures)))
    for vec in vectors["refused"]:
        failures = cddl.check_payload(bytes.fromhex(vec["payload"]), None)
        expected = Expect.NOT_SCHEMA if vec["name"] in NOT_SCHEMA_MATTERS else Expect.INVALID
        results.append(VectorResult(vec["name"], expected, tuple(failures)))
    for n, vec in enumerate(vectors["cose"]):
        # COSE-layer vectors sign raw bytes (empty, "hello", 255 bytes), not messages, so the
        # envelope rule (payload: bstr .cbor Message) does not apply; their header does.
        protected = cbor2.loads(bytes.fromhex(vec["envelope"])).value[0]
        failures = [f for f in (cddl.check(PROTECTED_RULE, protected),) if f]
        results.append(VectorResult(f"cose-{n}", Expect.VALID, tuple(failures)))
    return results


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    path = Path(args[0]) if args else VECTORS
    try:
        cddl = Cddl.from_doc()
        results = check_vectors(cddl, json.loads(path.read_text(encoding="utf-8")))
    except ContractError as exc:
        print(f"cddl: {exc}", file=sys.stderr)
        return 1
    bad = [r for r in results if not r.ok]
    for r in bad:
        why = "; ".join(r.failures) or "the CDDL accepts it"
        print(f"cddl: vector {r.name} should be {r.expected.value}: {why}", file=sys.stderr)
    print(f"cddl: {len(results) - len(bad)} of {len(results)} vectors as expected ({path.name})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

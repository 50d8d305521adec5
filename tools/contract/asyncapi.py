"""docs/asyncapi.yaml read by Python: the payload schema of each message kind, a JSON Schema
validator for the JSON form of a payload (tools/contract/jsonview.py), and the channel that a
topic of protocol.topics belongs to.

The AsyncAPI CLI checks the document itself (tools/contract/check.sh); this module lets the tests
hold it to protocol/ and to live traffic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
ASYNCAPI_DOC = ROOT / "docs" / "asyncapi.yaml"
_PARAM = re.compile(r"\{([a-z]+)\}")


@dataclass(frozen=True)
class AsyncApi:
    """The parsed document."""

    doc: dict[str, Any]

    @classmethod
    def load(cls, path: Path = ASYNCAPI_DOC) -> AsyncApi:
        return cls(yaml.safe_load(path.read_text(encoding="utf-8")))

    @property
    def schemas(self) -> dict[str, Any]:
        return dict(self.doc["components"]["schemas"])

    @property
    def messages(self) -> dict[str, Any]:
        return dict(self.doc["components"]["messages"])

    def message_for_kind(self, kind: str) -> dict[str, Any]:
        """The components.messages entry whose name is `kind` (a messages.Message class name)."""
        for message in self.messages.values():
            if message.get("name") == kind:
                return dict(message)
        raise LookupError(
            f"docs/asyncapi.yaml has no message named {kind!r}: add one under "
            "components.messages, with its payload under components.schemas"
        )

    def validator(self, kind: str) -> jsonschema.protocols.Validator:
        """A JSON Schema validator for the JSON form of a `kind` payload."""
        ref = self.message_for_kind(kind)["payload"]["$ref"]
        root = {"$ref": ref, "components": {"schemas": self.schemas}}
        return jsonschema.Draft7Validator(root)

    def errors(self, kind: str, payload_json: Any) -> list[str]:
        """Every way the JSON form of a payload breaks its schema; empty when it matches."""
        return [
            f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
            for e in self.validator(kind).iter_errors(payload_json)
        ]

    @cached_property
    def _addresses(self) -> list[tuple[str, re.Pattern[str]]]:
        out = []
        for name, channel in self.doc["channels"].items():
            pattern = _PARAM.sub(
                r"(?P<\1>[^/]+)",
                re.escape(channel["address"]).replace(r"\{", "{").replace(r"\}", "}"),
            )
            out.append((name, re.compile(pattern)))
        return out

    def channel_for(self, topic: str) -> str:
        """The name of the channel whose address matches a concrete topic."""
        matches = [name for name, pattern in self._addresses if pattern.fullmatch(topic)]
        if len(matches) != 1:
            raise LookupError(
                f"topic {topic!r} matches channels {matches} of docs/asyncapi.yaml, not one: "
                "add or fix its channel (address with {fleet}/{device}/{user}/{command})"
            )
        return matches[0]

    def channel_kinds(self, channel: str) -> set[str]:
        """Message names (kinds) a channel carries."""
        out = set()
        for ref in self.doc["channels"][channel]["messages"].values():
            key = ref["$ref"].rsplit("/", 1)[1]
            out.add(self.messages[key]["name"])
        return out

"""Write the message examples of docs/asyncapi.yaml from the test vectors.

Each message of the document carries, as its examples, the JSON form (tools/contract/jsonview.py)
of every vector of its kind in tests/vectors/project.json; tests/tools/test_contract.py checks
that they agree. After `python -m tools.gen_vectors` changes the vectors:

    python -m tools.contract.examples          rewrite the examples in docs/asyncapi.yaml
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import cbor2
import yaml

from tools.contract.asyncapi import ASYNCAPI_DOC
from tools.contract.cddl import VECTORS
from tools.contract.jsonview import to_json

# A message's payload reference and the examples block after it (6-space indented items).
_PAYLOAD = re.compile(
    r"(?P<head>      payload:\n        \$ref: '#/components/schemas/(?P<kind>\w+)'\n)"
    r"(?P<examples>      examples:\n(?:      [ -].*\n)*)?"
)


def examples_block(vectors: list[dict[str, Any]]) -> str:
    """The YAML of one message's examples, indented for components.messages."""
    items = [
        {
            "name": v["name"],
            "summary": f"tests/vectors/project.json, vector {v['name']}",
            "payload": to_json(cbor2.loads(bytes.fromhex(v["payload"]))),
        }
        for v in vectors
    ]
    dumped = yaml.safe_dump({"examples": items}, sort_keys=False, width=100, allow_unicode=True)
    return "".join(f"      {line}\n" for line in dumped.splitlines())


def rewrite(document: str, vectors: dict[str, Any]) -> str:
    """`document` with every message's examples made from `vectors`."""
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for vec in vectors["messages"]:
        by_kind.setdefault(vec["kind"], []).append(vec)

    def one(m: re.Match[str]) -> str:
        found = by_kind.get(m.group("kind"))
        return m.group("head") + (examples_block(found) if found else "")

    return _PAYLOAD.sub(one, document)


def main(argv: list[str] | None = None) -> int:
    del argv
    path: Path = ASYNCAPI_DOC
    before = path.read_text(encoding="utf-8")
    after = rewrite(before, json.loads(VECTORS.read_text(encoding="utf-8")))
    if after != before:
        path.write_text(after, encoding="utf-8")
    print(f"examples: {path.name} {'rewritten' if after != before else 'already current'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

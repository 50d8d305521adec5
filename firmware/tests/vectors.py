"""Reading tests/vectors/*.json in MicroPython: typed JSON (tools/typed_json.py) to values."""

import json

from cbor import Tag

VECTORS = "tests/vectors/"


def load(name):
    with open(VECTORS + name) as f:
        return json.load(f)


class Unsupported(Exception):
    """A typed value outside what the device decodes (floats, simple values, undefined)."""


def value(node):
    """Typed JSON -> the value the firmware's CBOR decoder returns; bignums and the kinds
    the device never decodes raise Unsupported."""
    kind = None
    for k in node:
        if k != "value":
            kind = k
    payload = node[kind]
    if kind == "int":
        return int(payload)
    if kind == "bytes":
        return bytes.fromhex(payload)
    if kind == "text":
        return payload
    if kind == "array":
        return [value(v) for v in payload]
    if kind == "map":
        return dict((value(k), value(v)) for k, v in payload)
    if kind == "bool":
        return bool(payload)
    if kind == "null":
        return None
    if kind == "tag":
        return Tag(int(payload), value(node["value"]))
    raise Unsupported(kind)


"""Typed JSON for CBOR values, the notation of tests/vectors/*.json.

{"int": 1}, {"bignum": "…"}, {"float": 1.5 | "NaN" | "Infinity" | "-Infinity" | "-0.0"},
{"bytes": "hex"}, {"text": "…"}, {"array": [...]}, {"map": [[key, value], ...]}, {"bool": b},
{"null": true}, {"undefined": true}, {"simple": n}, {"tag": n, "value": v}.
Readable in MicroPython (plain json), so the firmware tests share the files.
"""

from __future__ import annotations

import math
from typing import Any


def to_typed(value: Any) -> dict[str, Any]:
    """Plain Python (int, str, bytes, bool, None, list, tuple, dict) -> typed JSON."""
    if value is None:
        return {"null": True}
    if isinstance(value, bool):
        return {"bool": value}
    if isinstance(value, int):
        return {"int": value}
    if isinstance(value, float):
        if math.isnan(value):
            return {"float": "NaN"}
        if math.isinf(value):
            return {"float": "Infinity" if value > 0 else "-Infinity"}
        return {"float": value}
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    if isinstance(value, str):
        return {"text": value}
    if isinstance(value, list | tuple):
        return {"array": [to_typed(v) for v in value]}
    if isinstance(value, dict):
        return {"map": [[to_typed(k), to_typed(v)] for k, v in value.items()]}
    raise TypeError(f"no typed JSON for {type(value).__name__}")


def from_typed(node: dict[str, Any]) -> Any:
    """Typed JSON -> plain Python. Tags, simple values and undefined come back as tuples
    ("tag", n, value), ("simple", n) and ("undefined",) so a test can compare them."""
    (kind, payload), *rest = node.items()
    if kind == "int":
        return int(payload)
    if kind == "bignum":
        return int(payload)
    if kind == "float":
        specials = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf, "-0.0": -0.0}
        return specials[payload] if isinstance(payload, str) else float(payload)
    if kind == "bytes":
        return bytes.fromhex(payload)
    if kind == "text":
        return payload
    if kind == "array":
        return [from_typed(v) for v in payload]
    if kind == "map":
        return {_key(from_typed(k)): from_typed(v) for k, v in payload}
    if kind == "bool":
        return bool(payload)
    if kind == "null":
        return None
    if kind == "undefined":
        return ("undefined",)
    if kind == "simple":
        return ("simple", int(payload))
    if kind == "tag":
        return ("tag", int(payload), from_typed(dict(rest)["value"]))
    raise ValueError(f"unknown typed JSON kind {kind!r}")


def _key(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value

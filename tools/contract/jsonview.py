"""The JSON form of a decoded payload: what `tools.tap --json` prints under "payload" and what
the payload schemas of docs/asyncapi.yaml describe.

Rules (one place, so the document, the tap and the tests agree):

- a map keeps its keys; integer keys become their decimal text ("0", "10");
- a byte string becomes lowercase hex (base16, no prefix);
- integers stay integers, every digit kept (Python's json writes them exactly; a consumer in
  JavaScript must read them with a parser that keeps integers beyond 2^53);
- text, booleans and arrays are themselves.

The input is a payload decoded by protocol.cbor (plain CBOR only: no floats, tags or undefined,
which the strict decoder refuses before anything gets here).
"""

from __future__ import annotations

from typing import Any


def to_json(value: Any) -> Any:
    """The JSON form of a plain decoded CBOR value (see the module docstring)."""
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {_key(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    raise TypeError(f"{type(value).__name__} is not plain CBOR of the contract")


def _key(key: Any) -> str:
    if isinstance(key, bool) or not isinstance(key, int | str):
        raise TypeError(f"map key {key!r} is neither an integer nor text")
    return str(key)

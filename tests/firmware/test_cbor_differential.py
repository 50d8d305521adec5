"""The firmware's CBOR decoder against the bridge's (protocol.cbor, on cbor2) on thousands of
mutated message payloads: whatever the device accepts, the bridge accepts as the same value,
and both deterministic encoders write it back byte for byte alike."""

from __future__ import annotations

import json
import random
from pathlib import Path

from protocol import cbor
from protocol.errors import ProtocolError
from tests.firmware.conftest import ROOT, MicroPython

SCRIPT = """
import cbor

def has_tag(v):
    if isinstance(v, cbor.Tag):
        return True
    if isinstance(v, list):
        return any(has_tag(x) for x in v)
    if isinstance(v, dict):
        return any(has_tag(x) for x in v.values())
    return False

for line in open(%r):
    try:
        value = cbor.decode(bytes.fromhex(line.strip()))
    except cbor.CBORError:
        print("ERR")
        continue
    # tags: the bridge takes only COSE's outer one, which the device unwraps itself
    print("TAG" if has_tag(value) else cbor.encode(value).hex())
"""


def _contract_shaped(value: object) -> bool:
    """Maps keyed by integers 0-23 only or by text only, all the way down."""
    if isinstance(value, list):
        return all(_contract_shaped(v) for v in value)
    if isinstance(value, dict):
        small = all(type(k) is int and 0 <= k < 24 for k in value)
        text = all(type(k) is str for k in value)
        return (small or text) and all(_contract_shaped(v) for v in value.values())
    return True


def _mutants(rng: random.Random, n: int) -> list[bytes]:
    doc = json.loads((ROOT / "tests" / "vectors" / "project.json").read_text())
    seeds = [bytes.fromhex(v["payload"]) for v in doc["messages"]]
    out = []
    for _ in range(n):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            op = rng.randrange(3)
            if op == 0 and data:
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            elif op == 1 and data:
                del data[rng.randrange(len(data)) :]
            else:
                data.insert(rng.randrange(len(data) + 1), rng.randrange(256))
        out.append(bytes(data))
    return out


def test_what_the_firmware_accepts_the_bridge_accepts_as_the_same_value(
    micropython: MicroPython, tmp_path: Path
) -> None:
    inputs = _mutants(random.Random(20261201), 3000)
    cases = tmp_path / "mutants.txt"
    cases.write_text("".join(data.hex() + "\n" for data in inputs))
    out = micropython.code(SCRIPT % str(cases), heapsize="128k").split()
    assert len(out) == len(inputs)
    accepted = same_bytes = 0
    for data, got in zip(inputs, out, strict=True):
        if got in ("ERR", "TAG"):
            continue
        try:
            value = cbor.loads(data)
        except ProtocolError as exc:
            raise AssertionError(f"firmware accepted {data.hex()}, bridge: {exc}") from exc
        # the same value; and the same bytes where both encoders must agree (RFC 8949's bytewise
        # key order and cbor2's length-first one differ only for maps outside the contract)
        assert cbor.loads(bytes.fromhex(got)) == value, data.hex()
        if _contract_shaped(value):
            assert cbor.dumps(value).hex() == got, data.hex()
            same_bytes += 1
        accepted += 1
    # both outcomes are well exercised
    assert accepted > 200 and same_bytes > 100 and out.count("ERR") > 1000

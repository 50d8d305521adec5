"""firmware/lib/messages.py mirrors protocol/messages.py: the same keys, names, types and
defaults for every kind the device sends or receives, and the same trigger bodies."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from protocol import fields as f
from protocol import messages as m
from protocol import packed
from protocol.schema import _defaults, _schema
from protocol.strokes import Strokes
from tests.firmware.conftest import FIRMWARE_LIB

FIRMWARE_MODULES = ("messages", "cbor", "cose", "errors", "ed25519", "ed25519_comb", "sha512")

TYPE_CODES: dict[type, str] = {
    f.UInt: "u",
    f.Int: "i",
    f.IntRange: "i",
    f.Text: "t",
    f.Id: "t",
    f.Choice: "t",
    f.Bytes: "b",
    f.Bool: "?",
    f.IntMap: "m",
    f.PackedIntMap: "fp",
    f.TextMap: "m",
    f.Args: "m",
    f.TextList: "l",
    m.Body_: "body",
    m.Location_: "loc",
    Strokes: "s",
}


@pytest.fixture(scope="module")
def fw() -> Iterator[ModuleType]:
    """firmware/lib/messages.py imported in CPython (pure Python; it needs no board)."""
    saved = {name: sys.modules.pop(name) for name in FIRMWARE_MODULES if name in sys.modules}
    sys.path.insert(0, str(FIRMWARE_LIB))
    try:
        yield importlib.import_module("messages")
    finally:
        sys.path.remove(str(FIRMWARE_LIB))
        for name in FIRMWARE_MODULES:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


def rows(cls: type) -> list[tuple[int, str, str, Any]]:
    defaults = _defaults(cls)
    return [
        (key, name, TYPE_CODES[type(typ)], None if required else defaults[name])
        for key, name, typ, required in _schema(cls)
    ]


def test_every_kind_number_matches(fw: ModuleType) -> None:
    for kind in m.Kind:
        assert getattr(fw, kind.name) == int(kind)


def test_fields_of_each_mirrored_kind_match(fw: ModuleType) -> None:
    assert set(fw.FIELDS) == {1, 2, 3, 4, 5, 6, 9, 11, 14, 15}  # 14: ClaimAnswer, 15: Diag
    for kind, (name, table) in fw.FIELDS.items():
        cls = m.KINDS[kind]
        assert cls.__name__ == name
        assert list(fw.HEADER) + list(table) == rows(cls), name


def test_trigger_bodies_match(fw: ModuleType) -> None:
    assert set(fw.BODIES) == set(m.BODIES)
    for name, table in fw.BODIES.items():
        assert list(table) == rows(m.BODIES[name]), name


def test_location_matches(fw: ModuleType) -> None:
    assert list(fw.LOCATION) == rows(m.Location)


def test_constants_match(fw: ModuleType) -> None:
    assert fw.MAJOR_VERSION == m.MAJOR_VERSION
    assert fw.MAX_PAYLOAD_BYTES == m.MAX_PAYLOAD_BYTES
    assert fw.MAX_SEQ == m.MAX_SEQ
    assert fw.MODEL_SHA256_PREFIX == m.MODEL_SHA256_PREFIX
    assert f.PackedIntMap().max_items == fw.PACKED_MAX
    assert (fw.INT64_MIN, fw.INT64_MAX) == (packed.INT64_MIN, packed.INT64_MAX)
    assert set(fw.RECEIVED) == {
        m.Kind.ACK, m.Kind.BRIDGE_STATE, m.Kind.COMMAND, m.Kind.CLAIM_ANSWER
    }  # fmt: skip

"""The firmware's own test-suite (firmware/tests/test_*.py), each module in real MicroPython.

A module sets its heap with a line `HEAPSIZE = "96k"` (default 256k): the limit is part of what
it asserts, since the ESP32 leaves the firmware about 110 KB beside Wi-Fi.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.firmware.conftest import DEFAULT_HEAP, FIRMWARE_TESTS, MicroPython

MODULES = sorted(p.stem for p in FIRMWARE_TESTS.glob("test_*.py"))
_HEAP = re.compile(r'^HEAPSIZE = "(\w+)"$', re.MULTILINE)


def heapsize_of(module: str) -> str:
    found = _HEAP.search((FIRMWARE_TESTS / f"{module}.py").read_text())
    return found.group(1) if found else DEFAULT_HEAP


def test_the_suite_is_there() -> None:
    assert {"test_scorer"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_firmware_module(micropython: MicroPython, module: str, tmp_path: Path) -> None:
    out = micropython.suite(module, tmp_path, heapsize=heapsize_of(module))
    last = out.strip().splitlines()[-1]
    assert re.fullmatch(r"[1-9]\d* passed, 0 failed", last), out

"""The firmware's own test-suite (firmware/tests/test_*.py), each module in real MicroPython.

A module sets its heap with a line `HEAPSIZE = "96k"` (default 256k): the limit is part of what
it asserts, since the ESP32 leaves the firmware about 110 KB beside Wi-Fi. A module with the line
`NEEDS_BROKER = True` runs against a private Mosquitto, its port in FW_MQTT_PORT.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from tests.firmware.conftest import DEFAULT_HEAP, FIRMWARE_TESTS, MicroPython
from tests.harness.hung import HungRelay
from tests.harness.mosquitto import Mosquitto, free_port

_HEAP = re.compile(r'^HEAPSIZE = "(\w+)"', re.MULTILINE)
_BROKER = re.compile(r"^NEEDS_BROKER = True$", re.MULTILINE)
MODULES = sorted(p.stem for p in FIRMWARE_TESTS.glob("test_*.py"))
BROKER_MODULES = [m for m in MODULES if _BROKER.search((FIRMWARE_TESTS / f"{m}.py").read_text())]
PURE_MODULES = [m for m in MODULES if m not in BROKER_MODULES]


def heapsize_of(module: str) -> str:
    found = _HEAP.search((FIRMWARE_TESTS / f"{module}.py").read_text())
    return found.group(1) if found else DEFAULT_HEAP


def test_the_suite_is_there() -> None:
    assert {"test_cbor", "test_crypto", "test_cose", "test_outbox"} <= set(PURE_MODULES)
    assert "test_mqtt" in BROKER_MODULES


def _passed(out: str) -> None:
    last = out.strip().splitlines()[-1]
    assert re.fullmatch(r"[1-9]\d* passed, 0 failed", last), out


@pytest.mark.parametrize("module", PURE_MODULES)
def test_firmware_module(micropython: MicroPython, module: str, tmp_path: Path) -> None:
    _passed(micropython.suite(module, tmp_path, heapsize=heapsize_of(module)))


@pytest.mark.broker
@pytest.mark.parametrize("module", BROKER_MODULES)
def test_firmware_module_with_broker(
    micropython: MicroPython, module: str, tmp_path: Path, open_broker: Mosquitto
) -> None:
    # An open broker: these suites test the firmware's MQTT client itself (anonymous clients on
    # topics of their own, refused connects by return code), not the shipped ACLs.
    broker = open_broker
    hung = HungRelay(broker.port, broker.host)  # answers CONNACK, then nothing (hung link)
    hung.hang_after_reply = True
    swallow = HungRelay(broker.port, broker.host)  # accepts and reads, never answers
    swallow.hang_new = True
    try:
        with socket.socket() as silent:  # listens, never accepts: for connect timeouts
            silent.bind(("127.0.0.1", 0))
            silent.listen(1)
            env = {
                "FW_MQTT_PORT": str(broker.port),
                "FW_SILENT_PORT": str(silent.getsockname()[1]),
                "FW_DEAD_PORT": str(free_port()),  # nothing listens: connections are refused
                "FW_HUNG_PORT": str(hung.port),
                "FW_SWALLOW_PORT": str(swallow.port),
            }
            out = micropython.suite(module, tmp_path, heapsize=heapsize_of(module), env=env)
            print(out)  # the hung-link figures (pytest -s shows them)
            _passed(out)
    finally:
        hung.close()
        swallow.close()

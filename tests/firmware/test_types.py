"""firmware/ type-checks against the MicroPython ESP32 stubs (micropython-esp32-stubs, in the
dev extra): the board's modules and its standard library in place of CPython's typeshed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from tests.firmware.conftest import FIRMWARE_LIB, SHARED


def _stub_files(dist: str) -> list[tuple[Path, Path]]:
    """(installed file, path relative to site-packages) of a distribution's .pyi files."""
    files = metadata.distribution(dist).files or []
    return [(Path(str(f.locate())), Path(str(f))) for f in files if str(f).endswith(".pyi")]


def test_firmware_type_checks_against_the_esp32_stubs(tmp_path: Path) -> None:
    stubs = tmp_path / "stubs"  # the board's modules, on MYPYPATH
    typeshed = tmp_path / "typeshed"  # MicroPython's standard library, as typeshed
    for installed, rel in _stub_files("micropython-esp32-stubs"):
        target = stubs / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(installed, target)
    for installed, rel in _stub_files("micropython-stdlib-stubs"):
        root = typeshed if rel.parts[0] in ("stdlib", "stubs") else stubs
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(installed, target)
    (typeshed / "stdlib" / "VERSIONS").write_bytes(
        Path(
            str(metadata.distribution("micropython-stdlib-stubs").locate_file("stdlib/VERSIONS"))
        ).read_bytes()
    )
    for shared in SHARED:  # copied into lib/ by a board build: the firmware imports them
        shutil.copy(shared, stubs / shared.name)
    config = tmp_path / "mypy.ini"
    # the stubs' own internals are not what is checked here
    config.write_text(
        "[mypy]\n\n[mypy-_mpy_shed.*]\nignore_errors = True\n"
        "\n[mypy-machine,network,vfs]\nignore_errors = True\n"  # errors inside these stubs
    )
    sources = sorted(p.name for p in FIRMWARE_LIB.glob("*.py"))
    proc = subprocess.run(
        [
            sys.executable, "-m", "mypy",
            "--config-file", str(config),
            "--custom-typeshed-dir", str(typeshed),
            "--no-site-packages",
            "--check-untyped-defs",
            "--disable-error-code", "overload-cannot-match",  # inside the stubs themselves
            "--cache-dir", str(tmp_path / "cache"),
            *sources,
        ],
        cwd=FIRMWARE_LIB,
        env={"MYPYPATH": str(stubs), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{len(sources)} source files" in proc.stdout

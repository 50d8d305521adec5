"""Flash an ESP32 running MicroPython with the firmware, its config and its key (mpremote).

    python -m tools.flash --board var/esp32-1/board --port /dev/ttyUSB0
    python -m tools.flash --board var/esp32-1/board --dry-run

The library (firmware/lib and the modules shared with the agent) is compiled to .mpy for the
ESP32 (`mpy-cross -march=xtensawin`: viper code becomes Xtensa machine code) and pushed to
/lib; boot.py and main.py go to / as source (they run at reset); the board's files from
`edge-agent provision --kind mcu --target esp32` (config.json, device.key, key.json) go to /data,
where the firmware keeps its flash state. `--dry-run` lists every file that would be written,
with its size, and touches nothing. `--root` places everything under another directory of the
target (a test flashes the unix port through its raw REPL on a pty that way).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tools import firmware_build

BOARD_FILES = ("config.json", "device.key", "key.json")


class FlashError(Exception):
    """The board's files are incomplete, or mpremote or mpy-cross failed."""


@dataclass(frozen=True)
class Push:
    local: Path
    remote: str

    @property
    def size(self) -> int:
        return self.local.stat().st_size


def plan(
    board: Path, build: Path, root: str = "/", arch: str = firmware_build.ESP32_ARCH
) -> list[Push]:
    """Every file to write: the compiled library, the apps, the board's files."""
    missing = [name for name in BOARD_FILES if not (board / name).exists()]
    if missing:
        raise FlashError(
            f"{board} lacks {', '.join(missing)}: make it with "
            "edge-agent provision --kind mcu --target esp32 --out DIR (then --board DIR/board)"
        )
    root = root.rstrip("/") + "/"
    try:
        compiled = firmware_build.compile_lib(build, arch)
    except firmware_build.BuildError as exc:
        raise FlashError(str(exc)) from exc
    pushes = [Push(path, f"{root}lib/{path.name}") for path in compiled]
    pushes += [Push(app, f"{root}{app.name}") for app in firmware_build.APPS]
    pushes += [Push(board / name, f"{root}data/{name}") for name in BOARD_FILES]
    return pushes


def mpremote_args(port: str, pushes: list[Push], root: str, resume: bool = False) -> list[str]:
    """One mpremote run: make the directories, copy every file. `resume`: no soft reset on
    connecting (the unix port has none)."""
    root = root.rstrip("/") + "/"
    mkdirs = (
        "import os\n"
        f"for d in ({root + 'lib'!r}, {root + 'data'!r}):\n"
        "    try:\n        os.mkdir(d)\n    except OSError:\n        pass\n"
    )
    args = ["connect", port, *(["resume"] if resume else []), "exec", mkdirs]
    for push in pushes:
        args += ["+", "fs", "cp", str(push.local), ":" + push.remote]
    return args


def mpremote() -> str:
    beside = Path(sys.executable).parent / "mpremote"
    found = str(beside) if beside.exists() else shutil.which("mpremote")
    if found is None:
        raise FlashError("no `mpremote`: pip install mpremote (it is in the dev extra)")
    return found


def flash(
    board: Path,
    port: str,
    root: str = "/",
    dry_run: bool = False,
    arch: str | None = None,
    resume: bool = False,
) -> list[Push]:
    with tempfile.TemporaryDirectory(prefix="flash-") as tmp:
        pushes = plan(board, Path(tmp), root, arch or firmware_build.ESP32_ARCH)
        for push in pushes:
            print(f"{'would write' if dry_run else 'write'} {push.remote} ({push.size} bytes)")
        if dry_run:
            print(f"{len(pushes)} files, {sum(p.size for p in pushes)} bytes; nothing written")
            return pushes
        proc = subprocess.run(
            [mpremote(), *mpremote_args(port, pushes, root, resume)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0:
            raise FlashError(f"mpremote failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    print(f"{len(pushes)} files written to {port}; reset the board to start them")
    return pushes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools.flash", description=__doc__.split("\n")[0])
    parser.add_argument("--board", required=True, type=Path, help="DIR/board of provisioning")
    parser.add_argument("--port", default="auto", help="serial port (mpremote's connect)")
    parser.add_argument("--root", default="/", help="directory on the target (default /)")
    parser.add_argument("--arch", default=firmware_build.ESP32_ARCH, help="mpy-cross -march")
    parser.add_argument("--dry-run", action="store_true", help="list what would be written")
    parser.add_argument(
        "--resume", action="store_true", help="no soft reset on connecting (the unix port)"
    )
    args = parser.parse_args(argv)
    try:
        flash(args.board, args.port, args.root, args.dry_run, args.arch, args.resume)
    except FlashError as exc:
        print(f"flash: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

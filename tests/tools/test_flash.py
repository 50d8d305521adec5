"""tools/flash: what it would write (--dry-run), and a real flash through mpremote to the
MicroPython unix port's raw REPL on a pty, after which the flashed tree boots."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import threading
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.harness import cli
from tools import firmware_build
from tools.virtual_esp32 import find_micropython

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("esp32")
    cli(
        "provision", "--device-id", "esp32-f", "--fleet", "test", "--kind", "mcu",
        "--target", "esp32", "--out", str(out), "--bridge-key", "cd" * 32,
        "--mqtt-url", "mqtt://127.0.0.1:9", "--json",
    )  # fmt: skip
    return out / "board"


def flash(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.flash", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_dry_run_lists_every_file_and_writes_nothing(board: Path) -> None:
    proc = flash("--board", str(board), "--port", "/dev/nonexistent", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    remote = {line.split()[2] for line in lines if line.startswith("would write")}
    libs = {f"/lib/{p.stem}.mpy" for p in firmware_build.sources()}
    assert remote == libs | {
        "/boot.py", "/main.py", "/data/config.json", "/data/device.key", "/data/key.json",
    }  # fmt: skip
    assert "/lib/window.mpy" in remote  # the send window shared with the agent
    assert lines[-1].endswith("nothing written")


def test_an_incomplete_board_is_refused_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    proc = flash("--board", str(tmp_path), "--dry-run")
    assert proc.returncode == 2
    assert "lacks device.key, key.json" in proc.stderr and "--target esp32" in proc.stderr


@pytest.fixture
def unix_port_on_a_pty(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The unix port's REPL on one pty, relayed to a second pty whose name mpremote opens
    (a serial port, as a board's USB bridge)."""
    target = tmp_path / "target"
    target.mkdir()
    a_master, a_slave = pty.openpty()
    b_master, b_slave = pty.openpty()
    tty.setraw(a_slave)
    tty.setraw(b_slave)
    stop = threading.Event()

    def relay() -> None:
        while not stop.is_set():
            ready, _, _ = select.select([a_master, b_master], [], [], 0.1)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                    os.write(b_master if fd == a_master else a_master, data)
                except OSError:
                    return

    thread = threading.Thread(target=relay, daemon=True)
    thread.start()
    proc = subprocess.Popen(
        [find_micropython()], stdin=a_slave, stdout=a_slave, stderr=a_slave, cwd=target
    )
    try:
        yield os.ttyname(b_slave), target
    finally:
        proc.kill()
        proc.wait()
        stop.set()
        thread.join(2)
        for fd in (a_master, a_slave, b_master, b_slave):
            os.close(fd)


def test_flash_through_the_raw_repl_then_the_tree_boots(
    board: Path, unix_port_on_a_pty: tuple[str, Path], tmp_path: Path
) -> None:
    port, target = unix_port_on_a_pty
    arch = firmware_build.host_arch()
    assert arch is not None
    proc = flash(
        "--board", str(board), "--port", port, "--root", str(target), "--arch", arch, "--resume"
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("config.json", "device.key", "key.json"):
        assert (target / "data" / name).read_bytes() == (board / name).read_bytes()
    reference = firmware_build.compile_lib(tmp_path / "reference", arch)
    for built in reference:
        assert (target / "lib" / built.name).read_bytes() == built.read_bytes(), built.name
    # the flashed tree runs: it boots from its own lib and data (no broker: it keeps trying)
    run = subprocess.run(
        # the rig's heap (tools/virtual_esp32.DEFAULT_HEAP): since OTA and claim enrollment
        # the whole firmware no longer boots in 192 KB of the 64-bit unix port
        ["timeout", "5", find_micropython(), "-X", "heapsize=256k", str(target / "main.py"),
         str(target / "data")],
        env={**os.environ, "MICROPYPATH": str(target / "lib")},
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.stdout.startswith("boot 1: esp32-f"), run.stdout + run.stderr
    assert json.loads((target / "data" / "config.json").read_text())["device"]["id"] == "esp32-f"

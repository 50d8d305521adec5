"""SerialRig against a stand-in ESP32: the MicroPython unix port's REPL on a pty, with the
auto-reset circuit emulated (hil_tests/drivers/unix_board.py). Proves the driver's flashing,
reset, power cut, console capture and raw-REPL file access; not the USB adapter's modem lines
(a pty has none), which only a real board on the bench exercises."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hil_tests.drivers.unix_board import UnixPortBoard
from hil_tests.rigs.serial_rig import RigError, SerialRig, line_steps
from tools import firmware_build

ROOT = Path(__file__).resolve().parents[2]
ESP32_ID = "esp32-s"  # hil_tests/drivers/conftest.py provisions it


def wait_for(predicate: Callable[[], bool], timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def frames(log: bytes) -> list[bytes]:
    """The outbox's whole records (magic 0xA5, type, length, body, CRC-32), up to a torn one:
    the format of firmware/lib/outbox.py, read independently of it."""
    out, at = [], 0
    while at + 4 <= len(log) and log[at] == 0xA5:
        end = at + 4 + int.from_bytes(log[at + 2 : at + 4], "big") + 4
        if end > len(log) or zlib.crc32(log[at + 1 : end - 4]) != int.from_bytes(
            log[end - 4 : end], "big"
        ):
            break
        out.append(log[at:end])
        at = end
    return out


@pytest.fixture(scope="module")
def rig(unix_board: UnixPortBoard, esp32_board_dir: Path) -> Iterator[SerialRig]:
    arch = firmware_build.host_arch()
    assert arch is not None
    serial_rig = SerialRig(
        unix_board.port, root=str(unix_board.root), arch=arch, resume=True, lines=unix_board
    )
    serial_rig.install(esp32_board_dir)
    try:
        yield serial_rig
    finally:
        serial_rig.close()


def test_install_pushes_every_file_the_dry_run_lists(
    rig: SerialRig, unix_board: UnixPortBoard, esp32_board_dir: Path
) -> None:
    dry = subprocess.run(
        [sys.executable, "-m", "tools.flash", "--board", str(esp32_board_dir), "--port", "none",
         "--root", str(unix_board.root), "--arch", rig.arch, "--dry-run"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    listed = [line.split()[2] for line in dry.stdout.splitlines() if line.startswith("would")]
    assert len(listed) > 20 and sorted(rig.flashed) == sorted(listed)
    for remote in listed:  # each one is on the board's flash
        assert Path(remote).is_file(), remote
    for name in ("config.json", "device.key", "key.json"):
        assert (unix_board.root / "data" / name).read_bytes() == (
            esp32_board_dir / name
        ).read_bytes()
    assert rig.device_id == ESP32_ID and rig.reset_by == "lines"


def test_start_runs_main_and_its_boot_line_reaches_the_logs(
    rig: SerialRig, unix_board: UnixPortBoard
) -> None:
    boots = unix_board.boots
    rig.start()
    assert wait_for(lambda: f"boot 1: {ESP32_ID}" in rig.logs()), rig.logs()
    assert rig.alive() and unix_board.boots == boots + 1  # the reset pulse rebooted it
    rig.stop()
    assert not rig.alive() and unix_board.running  # at its REPL, still powered
    assert rig.logs().rstrip().endswith(">>>"), rig.logs()


def test_kill_cuts_the_power_mid_run_and_start_finds_the_outbox_intact(
    rig: SerialRig, unix_board: UnixPortBoard
) -> None:
    outbox = unix_board.root / "data" / "outbox.log"
    rig.start()
    assert wait_for(lambda: outbox.exists() and len(frames(outbox.read_bytes())) >= 3)
    rig.kill()
    assert not unix_board.running and not rig.alive()  # no process: nothing more is written
    committed = frames(outbox.read_bytes())
    time.sleep(0.5)
    assert frames(outbox.read_bytes()) == committed
    rig.start()
    assert wait_for(lambda: rig.logs().count(f": {ESP32_ID}") >= 3), rig.logs()
    after = rig.read_file("outbox.log")  # through the raw REPL: the board stops there
    assert after == outbox.read_bytes()
    assert frames(after)[: len(committed)] == committed
    assert not rig.alive()


def test_a_board_held_in_reset_still_gives_its_files(rig: SerialRig) -> None:
    rig.start()
    rig.kill()
    assert rig.read_file("device.key") == (Path(rig.root) / "data" / "device.key").read_bytes()


@pytest.mark.parametrize("size", [0, 1, 255, 4099])
def test_write_then_read_round_trips_every_byte(
    rig: SerialRig, unix_board: UnixPortBoard, size: int
) -> None:
    data = bytes((i * 7 + 3) % 256 for i in range(size)) + b"\x00\x01\x02\x03\x04\r\n>>> "
    rig.write_file("blob.bin", data)
    assert (unix_board.root / "data" / "blob.bin").read_bytes() == data
    assert rig.read_file("blob.bin") == data


def test_a_path_outside_the_data_dir_is_refused(rig: SerialRig) -> None:
    with pytest.raises(RigError, match="relative to the data directory"):
        rig.read_file("../main.py")
    with pytest.raises(RigError, match="cannot read"):
        rig.read_file("no-such-file")


def test_without_modem_lines_the_driver_soft_resets_over_the_repl(
    rig: SerialRig, unix_board: UnixPortBoard
) -> None:
    rig.close()  # one owner of the port at a time, as on a bench
    with SerialRig(unix_board.port, root=str(unix_board.root), resume=True) as plain:
        assert plain.reset_by == "repl"  # a pty refuses DTR/RTS (ENOTTY)
        boots = unix_board.boots
        plain.start()
        assert wait_for(lambda: unix_board.boots > boots)  # Ctrl-D: the unix port restarts
        assert wait_for(lambda: f": {ESP32_ID}" in plain.logs()), plain.logs()
        assert plain.alive()
        plain.stop()
        assert not plain.alive()
    with pytest.raises(RigError, match="closed"):
        plain.read_file("device.key")


def test_a_missing_port_says_which_and_how_to_find_it() -> None:
    with pytest.raises(RigError, match=r"no such port /dev/ttyNOPE9.*ls /dev/ttyUSB"):
        SerialRig("/dev/ttyNOPE9")


def test_a_file_that_is_no_tty_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ttyFAKE").write_text("")
    with pytest.raises(RigError, match="not a serial device"):
        SerialRig(str(tmp_path / "ttyFAKE"))


@pytest.mark.parametrize("before", list(itertools.product([False, True], repeat=2)))
@pytest.mark.parametrize("after", list(itertools.product([False, True], repeat=2)))
def test_setting_the_lines_never_passes_through_a_reset_it_was_not_asked_for(
    before: tuple[bool, bool], after: tuple[bool, bool]
) -> None:
    lines = dict(zip(("dtr", "rts"), before, strict=True))
    seen = []
    for line, level in line_steps(*after):
        lines[line] = level
        seen.append((lines["dtr"], lines["rts"]))
    assert seen[-1] == after
    reset = (False, True)  # RTS asserted, DTR released: EN low
    assert reset not in seen[:-1] or after == reset

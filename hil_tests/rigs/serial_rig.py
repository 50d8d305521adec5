"""A real ESP32 on the bench over USB serial: flash, reset, power cut, console log, flash files.

    rig = SerialRig("/dev/ttyUSB0")
    rig.install(Path("var/esp32-1/board"))   # python -m tools.flash --board ... --port ...
    rig.start()                              # a reset: boot.py, then main.py
    rig.logs()                               # everything the board printed since
    rig.kill()                               # power cut: EN held low until the next start()
    rig.read_file("outbox.log")              # /data/outbox.log, through the raw REPL

Reset and power cut go through the auto-reset circuit of ESP32 dev boards (the one esptool
drives): RTS pulls EN (the chip's reset) low and DTR pulls IO0 (the boot-mode strap) low, each
through a transistor, so that RTS asserted alone holds the chip in reset and releasing it boots
the firmware; DTR is left released, so the board never boots into its ROM downloader. A port
whose modem lines cannot be driven (a pty, an adapter without RTS) falls back to MicroPython's
soft reset over the REPL (Ctrl-C, then Ctrl-D): that restarts the program but is no power cut,
since the firmware sees the KeyboardInterrupt first (`reset_by` tells which one a rig uses).

One serial line carries both the console and the REPL: a background thread reads the console
into a buffer, and pauses while the driver talks to the REPL. Reading or writing a file stops
the running program (Ctrl-C, as mpremote does) and leaves the board at its REPL: start() runs it
again. The data files live under ROOT/data (`root`, `/` on a board).
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from mpremote.transport import TransportError
from mpremote.transport_serial import SerialTransport

from tools import firmware_build
from tools import flash as flash_tool

try:  # the rig contract (hil_tests/rigs/base.py) once the HIL suite is there
    from hil_tests.rigs.base import KIND_ESP32, Rig, RigError
except ImportError:  # pragma: no cover - the drivers stand alone before it lands
    KIND_ESP32 = "esp32"
    Rig = object  # type: ignore[assignment,misc,unused-ignore]

    class RigError(Exception):  # type: ignore[no-redef,unused-ignore]
        """A rig could not do what was asked."""


# Printed by MicroPython when it enters its REPL (a program ended, crashed or was interrupted).
REPL_PROMPT = b">>> "
RESET_PULSE_S = 0.1  # EN low this long is a reset (the ESP32 needs about 50 us)
BOOT_WAIT_S = 5.0  # a board powered on prints its first line within this
REPL_TIMEOUT_S = 10.0
READER_POLL_S = 0.02


class ResetLines(Protocol):
    """The host side of the auto-reset circuit: drive DTR and RTS (True: asserted)."""

    def set_lines(self, dtr: bool, rts: bool) -> None: ...


def line_steps(dtr: bool, rts: bool) -> tuple[tuple[str, bool], tuple[str, bool]]:
    """The order to set the lines in, so that no state between is a reset (RTS asserted with
    DTR released) unless the target is one: RTS first when releasing it, DTR first otherwise
    (DTR asserted alone is harmless: IO0 is read only while EN rises)."""
    if rts:
        return ("dtr", dtr), ("rts", rts)
    return ("rts", rts), ("dtr", dtr)


class SerialRig(Rig):  # type: ignore[misc,valid-type,unused-ignore]
    """One ESP32 over a serial port, running the firmware flashed by tools.flash.

    `root`: where the firmware's files live on the target (`/` on a board; a directory for the
    unix port). `arch`: mpy-cross's -march (the ESP32's by default). `resume`: the target has
    no soft reset on connecting (the unix port). `lines`: drive the reset circuit through this
    instead of the port's own DTR/RTS (a stand-in board's emulated circuit).
    """

    kind = KIND_ESP32

    def __init__(
        self,
        port: str,
        baud: int = 115200,
        root: str = "/",
        *,
        arch: str | None = None,
        resume: bool = False,
        lines: ResetLines | None = None,
    ) -> None:
        self.port = port
        self.baud = baud
        self.root = root.rstrip("/") + "/"
        self.arch = arch or firmware_build.ESP32_ARCH
        self.resume = resume
        self.name = f"serial:{port}"
        self.device_id = ""
        self.flashed: list[str] = []  # the remote paths the last install() wrote
        self._lines = lines
        self._console = bytearray()
        self._mark = 0  # where the console stood at the last start()
        self._started = False
        self._held_in_reset = False
        self._reader_error: str | None = None
        self._io = threading.Lock()  # the reader, or a REPL session, owns the line
        self._closed = threading.Event()
        self._transport = self._open()
        self.reset_by = "lines" if self._drive(dtr=False, rts=False) else "repl"
        self._reader = threading.Thread(target=self._read_console, daemon=True)
        self._reader.start()

    # -- the rig contract ---------------------------------------------------------------------

    def install(self, device_dir: Path) -> None:
        """Compile and push the firmware, its config and its key (tools.flash), then stop.

        `device_dir`: the `board` directory of `edge-agent provision --target esp32`.
        """
        try:
            config = json.loads((device_dir / "config.json").read_text())
            device_id = str(config["device"]["id"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RigError(
                f"{device_dir} is not a provisioned board: make it with edge-agent provision "
                "--kind mcu --target esp32 --out DIR, then pass DIR/board"
            ) from exc
        if self._held_in_reset:
            self._power_on()
        # tools.flash prints a line a file: the rig keeps the list, not the noise
        with self._line_released(), contextlib.redirect_stdout(io.StringIO()):
            try:
                pushes = flash_tool.flash(
                    device_dir, self.port, self.root, arch=self.arch, resume=self.resume
                )
            except flash_tool.FlashError as exc:
                raise RigError(f"{self.name}: flashing failed: {exc}") from exc
        self.flashed = [push.remote for push in pushes]
        self.device_id = device_id
        self._started = False

    def start(self) -> None:
        """Boot the firmware: release a held reset, else pulse one (or soft-reset the REPL)."""
        with self._io:
            self._mark = len(self._console)
        if self._held_in_reset:
            self._power_on()
        elif self.reset_by == "lines":
            self._drive(dtr=False, rts=True)
            time.sleep(RESET_PULSE_S)
            self._drive(dtr=False, rts=False)
        else:
            self._soft_reset()
        self._started = True

    def stop(self) -> None:
        """A clean stop: Ctrl-C (the firmware's KeyboardInterrupt handler says goodbye), then
        wait for the REPL."""
        if self._held_in_reset or not self._started:
            return
        deadline = time.monotonic() + REPL_TIMEOUT_S
        while time.monotonic() < deadline and not self._at_prompt():
            # again every second: a program may catch one interrupt, or be rebooting
            self._write(b"\r\x03")
            pause = time.monotonic() + 1
            while time.monotonic() < pause and not self._at_prompt():
                time.sleep(0.05)
        self._started = False

    def kill(self) -> None:
        """A power cut: EN held low (nothing the firmware does runs) until start().

        Without modem lines this degrades to an interrupt (`reset_by == "repl"`)."""
        if self.reset_by == "lines":
            self._drive(dtr=False, rts=True)
            self._held_in_reset = True
        else:
            self._write(b"\r\x03")
        self._started = False

    def alive(self) -> bool:
        """Powered, started, and the program has not ended at the REPL."""
        if self._held_in_reset or not self._started or self._reader_error is not None:
            return False
        return not self._at_prompt()

    def logs(self) -> str:
        """Everything the board printed on its console while the driver was not at its REPL."""
        with self._io:
            text = bytes(self._console).decode("utf-8", "replace")
        if self._reader_error is not None:
            text += f"\n[{self.name}: {self._reader_error}]"
        return text

    def read_file(self, path: str) -> bytes:
        """A file of the board's data dir (ROOT/data), read through the raw REPL."""
        with self._repl() as transport:
            try:
                return bytes(transport.fs_readfile(self._data_path(path)))
            except (TransportError, OSError) as exc:
                raise RigError(f"{self.name}: cannot read {self._data_path(path)}: {exc}") from exc

    def write_file(self, path: str, data: bytes) -> None:
        """Write a file of the board's data dir (ROOT/data) through the raw REPL."""
        with self._repl() as transport:
            try:
                transport.fs_writefile(self._data_path(path), data)
            except (TransportError, OSError) as exc:
                raise RigError(f"{self.name}: cannot write {self._data_path(path)}: {exc}") from exc

    def close(self) -> None:
        """Stop reading the console and release the port (the board keeps its state)."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._reader.join(2)
        with contextlib.suppress(Exception):
            self._transport.serial.close()

    def __enter__(self) -> SerialRig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the line -----------------------------------------------------------------------------

    def _open(self) -> Any:
        """mpremote's serial transport on the port, with a clear error when it is missing."""
        if not os.path.exists(self.port):
            raise RigError(
                f"{self.name}: no such port {self.port}: plug the board in and look for it "
                "with `ls /dev/ttyUSB* /dev/ttyACM*` (or `mpremote connect list`)"
            )
        if not stat.S_ISCHR(os.stat(self.port).st_mode):
            raise RigError(f"{self.name}: {self.port} is not a serial device")
        if not os.access(self.port, os.R_OK | os.W_OK):
            raise RigError(
                f"{self.name}: no permission on {self.port}: add yourself to its group "
                "(`sudo usermod -aG dialout $USER`, then log in again) or see "
                "hil_tests/drivers/README.md for a udev rule"
            )
        try:
            # timeout: mpremote's reads on a pty would otherwise block for ever
            return SerialTransport(self.port, self.baud, timeout=1)
        except (TransportError, OSError) as exc:
            raise RigError(f"{self.name}: cannot open {self.port}: {exc}") from exc

    def _drive(self, dtr: bool, rts: bool) -> bool:
        """Set the reset circuit's lines; False when the port has none (a pty)."""
        if self._lines is not None:
            self._lines.set_lines(dtr, rts)
            return True
        serial = self._transport.serial
        try:
            for line, level in line_steps(dtr, rts):
                setattr(serial, line, level)
        except OSError as exc:
            if exc.errno in (errno.ENOTTY, errno.EINVAL):
                return False
            raise RigError(f"{self.name}: cannot drive DTR/RTS: {exc}") from exc
        return True

    def _power_on(self) -> None:
        self._drive(dtr=False, rts=False)
        self._held_in_reset = False

    def _soft_reset(self) -> None:
        """Interrupt whatever runs, leave the raw REPL, Ctrl-D: MicroPython restarts and runs
        boot.py and main.py (the unix port exits: its stand-in board reboots it)."""
        self._write(b"\r\x03\x03")
        time.sleep(0.2)
        self._write(b"\x02\x04")

    def _check_open(self) -> None:
        if self._closed.is_set():
            raise RigError(f"{self.name}: the rig is closed (make a new SerialRig)")

    def _write(self, data: bytes) -> None:
        self._check_open()
        with self._io:
            self._transport.serial.write(data)

    def _at_prompt(self) -> bool:
        with self._io:
            return bytes(self._console[self._mark :]).rstrip(b"\r\n").endswith(REPL_PROMPT)

    def _read_console(self) -> None:
        serial = self._transport.serial
        while not self._closed.is_set():
            with self._io:
                try:
                    waiting = serial.in_waiting
                    if waiting:
                        self._console += serial.read(waiting)
                except OSError as exc:  # the board was unplugged
                    self._reader_error = f"the console stopped: {exc}"
                    return
            time.sleep(READER_POLL_S)

    @contextlib.contextmanager
    def _line_released(self) -> Iterator[None]:
        """Close the port for another program (mpremote), then open it again."""
        with self._io:
            self._transport.serial.close()
            try:
                yield
            finally:
                self._transport.serial.open()

    @contextlib.contextmanager
    def _repl(self) -> Iterator[Any]:
        """The raw REPL, with the console reader paused; a board held in reset is powered on
        and interrupted as soon as it prints."""
        self._check_open()
        if self._held_in_reset:
            mark = len(self._console)
            self._power_on()
            deadline = time.monotonic() + BOOT_WAIT_S
            while time.monotonic() < deadline and len(self._console) == mark:
                time.sleep(0.05)
        self._started = False
        with self._io:
            transport = self._transport
            last: Exception | None = None
            for _attempt in range(3):  # a Ctrl-C sent while the board boots can be lost
                try:
                    transport.enter_raw_repl(soft_reset=False, timeout_overall=REPL_TIMEOUT_S / 3)
                    break
                except (TransportError, OSError) as exc:
                    last = exc
            else:
                raise RigError(f"{self.name}: the board does not answer at its REPL: {last}")
            try:
                yield transport
            finally:
                transport.exit_raw_repl()
                self._console += transport.read_until(1, REPL_PROMPT, timeout=1)

    def _data_path(self, path: str) -> str:
        if path.startswith("/") or ".." in path.split("/"):
            raise RigError(f"{self.name}: {path!r} must be relative to the data directory")
        return f"{self.root}data/{path}"


__all__ = ["ResetLines", "RigError", "SerialRig", "line_steps"]

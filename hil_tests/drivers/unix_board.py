"""A stand-in ESP32 on a serial port: the MicroPython unix port's REPL behind a pseudo-terminal.

What a board's USB-serial bridge gives the bench, this gives a test: a tty device name that
pyserial and mpremote open (`port`), a REPL that speaks the raw REPL, Ctrl-C that interrupts the
running program (the pty's line discipline turns it into SIGINT, as a board's REPL does), and a
board that boots `main.py` from its flash (`root`) at every power-on and drops to the REPL
when it ends. A pty has no modem lines, so `lines` stands in for the auto-reset circuit
(RTS to EN, DTR to IO0): EN low cuts the power (SIGKILL, mid-write if it was writing), EN high
powers the board on again. When MicroPython exits on its own (Ctrl-D at the REPL: the unix
port's soft reset), the board reboots, as a soft reset does on a board.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import subprocess
import termios
import threading
import tty
from pathlib import Path

from tools.virtual_esp32 import DEFAULT_HEAP, find_micropython

# The boot ROM of the stand-in: what a board does after a reset (boot.py, then main.py, both
# from the root of its flash), then its REPL (`micropython -i`).
_BOOT = """\
import os, sys
os.chdir({root!r})
for _app in ("boot.py", "main.py"):
    try:
        os.stat(_app)
    except OSError:
        continue
    exec(open(_app).read(), {{"__name__": "__main__"}})
"""


class UnixPortBoard:
    """One stand-in board. `port`: the tty name to open; `root`: its flash (a directory)."""

    def __init__(self, root: Path, heapsize: str = DEFAULT_HEAP) -> None:
        self.root = root
        self.heapsize = heapsize
        self.boots = 0
        self._boot_script = root.parent / f"{root.name}-rom.py"
        self._boot_script.write_text(_BOOT.format(root=str(root)))
        self._board_master, self._board_slave = pty.openpty()
        self._host_master, self._host_slave = pty.openpty()
        tty.setraw(self._host_slave)
        # raw, except that Ctrl-C raises SIGINT while a program runs (the unix port switches
        # the tty to fully raw itself while its REPL reads a line)
        attrs = termios.tcgetattr(self._board_slave)
        tty.setraw(self._board_slave)
        raw = termios.tcgetattr(self._board_slave)
        raw[3] |= termios.ISIG
        raw[6][termios.VINTR] = attrs[6][termios.VINTR]
        self._line_attrs = raw
        self.port = os.ttyname(self._host_slave)
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._powered = False
        self._closing = threading.Event()
        self._relay = threading.Thread(target=self._run_relay, daemon=True)
        self._relay.start()
        self._watch = threading.Thread(target=self._run_watch, daemon=True)
        self._watch.start()

    # -- the auto-reset circuit (what DTR/RTS drive on a board) ----------------------------

    def set_lines(self, dtr: bool, rts: bool) -> None:
        """The host drives DTR and RTS; EN is low (reset held) when RTS is asserted alone."""
        en_low = rts and not dtr
        if en_low:
            self.power_off()
        else:
            self.power_on()

    def power_on(self) -> None:
        with self._lock:
            if self._powered:
                return
            self._powered = True
            self._spawn()

    def power_off(self) -> None:
        with self._lock:
            self._powered = False
            self._reap()

    @property
    def running(self) -> bool:
        with self._lock:
            return self._proc is not None and self._proc.poll() is None

    def close(self) -> None:
        self.power_off()
        self._closing.set()
        self._relay.join(2)
        self._watch.join(2)
        for fd in (self._board_master, self._board_slave, self._host_master, self._host_slave):
            os.close(fd)
        self._boot_script.unlink(missing_ok=True)

    # -- internals --------------------------------------------------------------------------

    def _spawn(self) -> None:
        slave = self._board_slave
        # a MicroPython killed at its REPL leaves the line fully raw: set it again at power-on
        termios.tcsetattr(slave, termios.TCSANOW, self._line_attrs)

        def controlling_tty() -> None:  # Ctrl-C on the line becomes SIGINT for the board
            os.setsid()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

        self._proc = subprocess.Popen(
            [find_micropython(), "-X", f"heapsize={self.heapsize}", "-i", str(self._boot_script)],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=self.root,
            env={**os.environ, "MICROPYPATH": f"{self.root / 'lib'}:.frozen"},
            preexec_fn=controlling_tty,
        )
        self.boots += 1

    def _reap(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def _run_watch(self) -> None:
        """A MicroPython that exits (soft reset at the REPL, a crash) reboots while powered."""
        while not self._closing.wait(0.05):
            with self._lock:
                if self._powered and self._proc is not None and self._proc.poll() is not None:
                    self._spawn()

    def _run_relay(self) -> None:
        peer = {self._board_master: self._host_master, self._host_master: self._board_master}
        while not self._closing.is_set():
            ready, _, _ = select.select(list(peer), [], [], 0.1)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                    os.write(peer[fd], data)
                except OSError:
                    continue

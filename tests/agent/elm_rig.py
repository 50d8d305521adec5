"""An ELM327 adapter on a pseudo-terminal for tests: the ELM327-emulator package's `car`
scenario, run as its own process, reachable through a symlink (as udev's /dev/serial/by-id
names are), so a test can unplug it (kill the process) and plug it back (start another).

    python -m tests.agent.elm_rig --link PATH [--ev] [--odometer-km N] [--km-per-s K]

Without --ev the car is the scenario as shipped: it declares PID A6 but answers it in another
service (61 A6 ...), declares PID 5B but has no data for it, and counts PID 31. With --ev the car
answers PID A6 (an odometer from --odometer-km growing by --km-per-s) and PID 5B (charge 80 %).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from elm import Elm
from elm.obd_message import DT, ECU_R_ADDR_E, HD, SZ

ROOT = Path(__file__).resolve().parents[2]


def _answer(data: str) -> Any:
    size = len(data.split())
    return HD(ECU_R_ADDR_E) + SZ(f"{size:02X}") + DT(data)


def odometer_answer(km: float) -> Any:
    tenths = round(km * 10)
    return _answer("41 A6 " + " ".join(f"{b:02X}" for b in tenths.to_bytes(4, "big")))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--link", type=Path, required=True)
    ap.add_argument("--ev", action="store_true")
    ap.add_argument("--odometer-km", type=float, default=12_000.0)
    ap.add_argument("--km-per-s", type=float, default=0.0)
    args = ap.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    emulator = Elm(batch_mode=True)
    emulator.set_sorted_obd_msg("car")
    # Open the pty before the emulator's thread starts: that thread calls get_pty() too, and
    # the two racing left it with a half-opened port ("no configured device port") and no rig.
    pty = emulator.get_pty()
    if pty is None:
        print("elm_rig: the emulator could not open a pseudo-terminal", file=sys.stderr)
        return 1
    with emulator:
        tmp = args.link.with_name(args.link.name + ".tmp")
        tmp.unlink(missing_ok=True)
        os.symlink(pty, tmp)
        os.replace(tmp, args.link)
        print(pty, flush=True)
        start = time.monotonic()
        while not stop.is_set():
            if args.ev:
                km = args.odometer_km + args.km_per_s * (time.monotonic() - start)
                emulator.answer = {
                    "ODOMETER": odometer_answer(km),
                    "BATT_REM_CHARGE": _answer("41 5B CC"),  # 204 / 255 = 80 %
                }
            stop.wait(0.1)
    args.link.unlink(missing_ok=True)
    return 0


class Rig:
    """The emulator process behind a stable symlink: `plug` starts it, `unplug` ends it."""

    def __init__(self, link: Path, *args: str) -> None:
        self.link, self.args = link, args
        self.proc: subprocess.Popen[str] | None = None

    def plug(self) -> Rig:
        log = self.link.with_name("elm_rig.log")
        with open(log, "a") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.agent.elm_rig", "--link", str(self.link), *self.args],
                cwd=self.link.parent,  # the emulator writes its elm.log there
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the rig prints its pty once it answers
        assert line.startswith("/dev/"), line + log.read_text()
        return self

    def unplug(self) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(10)
        self.proc = None


if __name__ == "__main__":
    sys.exit(main())

"""``python -m hil_tests.rigs.agent_main run --config ...``: `edge-agent` as a virtual rig runs.

Exactly ``agent.cli.main`` unless the bench sets a fault switch in the environment. The
switches live here, in the bench, and never ship: the product has no such code path.

- ``HIL_DATA_DIR``: the rig's data dir. The agent's I2C bus is then the simulated MPU-6050
  (SimBus below) with the fault the file ``hil_sensor_fault`` there names, and the wall
  clock runs off by the ms in ``hil_clock_offset_ms`` (a clock jump);
- ``HIL_BROKEN_BUILD=delete-before-ack``: a deliberately broken build whose outbox forgets each
  message as soon as it is numbered for sending, before any end-to-end ack covers it. The
  bench's outage, partition and power-cut scenarios must fail on it
  (hil_tests/test_broken_build.py).
"""

from __future__ import annotations

import errno
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from agent import cli
from agent.outbox import Entry, Outbox
from agent.provision_esp32 import firmware_module

BROKEN_ENV = "HIL_BROKEN_BUILD"
DATA_ENV = "HIL_DATA_DIR"  # the rig's data dir, where the fault switch files are
SENSOR_FAULT_FILE = "hil_sensor_fault"  # "i2c_error", "stuck" or "none"
CLOCK_OFFSET_FILE = "hil_clock_offset_ms"  # the wall clock's offset, in ms
POLL_S = 1.0
DELETE_BEFORE_ACK = "delete-before-ack"
BROKEN_BUILDS = (DELETE_BEFORE_ACK,)


def break_outbox() -> None:
    """Make Outbox.assign delete what it numbers, as if the ack had already come."""
    assign = Outbox.assign

    def assign_and_forget(self: Outbox, limit: int, sign: Callable[[bytes], bytes]) -> list[Entry]:
        entries = assign(self, limit, sign)
        if entries:
            self.ack(entries[-1].seq or 0)
        return entries

    Outbox.assign = assign_and_forget  # type: ignore[method-assign]


class SimBus:
    """smbus2.SMBus's calls over the simulated MPU-6050 (firmware/lib/mpu6050_sim.py: the same
    chip the virtual ESP32 reads), with the bench's sensor faults in front of it: the virtual
    rig is a Pi with an MPU-6050 on I2C. A hardware bus is the one thing the bench simulates."""

    def __init__(self, data_dir: Path, seed: int) -> None:
        self.chip = firmware_module("mpu6050_sim").SimI2C(seed)
        self.switch = data_dir / SENSOR_FAULT_FILE
        self.fault, self.checked = "none", 0.0
        self.frozen: dict[tuple[int, int], list[int]] = {}

    def _fault(self) -> str:
        now = time.monotonic()
        if now - self.checked >= POLL_S:
            self.checked = now
            try:
                self.fault = self.switch.read_text().strip() or "none"
            except OSError:
                self.fault = "none"
        return self.fault

    def read_byte_data(self, addr: int, reg: int) -> int:
        return self.read_i2c_block_data(addr, reg, 1)[0]

    def write_byte_data(self, addr: int, reg: int, value: int) -> None:
        self.chip.writeto_mem(addr, reg, bytes([value]))

    def read_i2c_block_data(self, addr: int, reg: int, length: int) -> list[int]:
        fault = self._fault()
        if fault == "i2c_error":
            raise OSError(errno.EIO, "Remote I/O error")  # what smbus2 raises on a NAK
        if fault == "stuck" and (reg, length) in self.frozen:
            return self.frozen[(reg, length)]
        block = list(self.chip.readfrom_mem(addr, reg, length))
        self.frozen = {(reg, length): block} if fault == "stuck" else {}
        return block

    def close(self) -> None:
        pass


def simulate_i2c(data_dir: Path, seed: int) -> None:
    """`[sensors] source = "mpu6050"` opens SimBus instead of /dev/i2c-N."""
    from agent.sensors import mpu6050

    mpu6050.open_bus = lambda _number: SimBus(data_dir, seed)  # type: ignore[assignment]


def offset_wall_clock(data_dir: Path) -> None:
    """The process's wall clock (time.time, time.time_ns) runs off by the ms in the switch
    file, as a device whose RTC or NTP jumped; the monotonic clock is left alone, as a jump
    leaves it."""
    switch = data_dir / CLOCK_OFFSET_FILE
    real_ns = time.time_ns
    state: dict[str, float] = {"checked": -POLL_S, "offset_ns": 0}

    def offset_ns() -> int:
        now = time.monotonic()
        if now - state["checked"] >= POLL_S:
            state["checked"] = now
            try:
                state["offset_ns"] = int(switch.read_text().strip() or 0) * 1_000_000
            except (OSError, ValueError):
                state["offset_ns"] = 0
        return int(state["offset_ns"])

    time.time_ns = lambda: real_ns() + offset_ns()
    time.time = lambda: time.time_ns() / 1e9


def main(argv: list[str] | None = None) -> int:
    broken = os.environ.get(BROKEN_ENV, "")
    if broken == DELETE_BEFORE_ACK:
        print(f"hil: BROKEN BUILD {broken}: the outbox deletes before the ack", flush=True)
        break_outbox()
    elif broken:
        print(f"hil: unknown {BROKEN_ENV}={broken!r}; expected one of {BROKEN_BUILDS}")
        return 2
    data = os.environ.get(DATA_ENV)
    if data:
        simulate_i2c(Path(data), seed=sum(Path(data).name.encode()))
        offset_wall_clock(Path(data))
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())

"""The rig contract every HIL rig driver implements (virtual, serial, SSH).

A rig is one device under test: a Linux agent process or an ESP32 running the firmware. The
scenarios in hil_tests/ drive a rig only through this interface, so the same scenario runs on a
virtual rig here and in CI, and on a real board or Pi on the bench.

Optional capabilities (fault injection a real rig may lack) are methods with a default that
raises ``NotImplementedError("<rig> cannot ...")``; a scenario that needs one skips with that
reason on a real rig. The virtual rigs implement all of them.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path

KIND_AGENT = "agent"
KIND_ESP32 = "esp32"
KINDS = (KIND_AGENT, KIND_ESP32)


@dataclass(frozen=True)
class Counters:
    """A device's own view: highest number used, highest acked, messages kept, link state."""

    last_seq: int
    last_ack: int  # the highest ack the device knows of
    backlog: int
    connected: bool
    deleted_upto: int = 0  # what the device's durable outbox has deleted (its persisted ack)


class RigError(RuntimeError):
    """A rig could not do what was asked (install, start, read a file...)."""


class Rig(abc.ABC):
    """One device under test."""

    name: str  # "virtual-agent", "virtual-esp32", "serial:/dev/ttyUSB0", "ssh:pi@host"
    kind: str  # KIND_AGENT (Linux agent) or KIND_ESP32 (firmware)
    device_id: str

    @abc.abstractmethod
    def install(self, device_dir: Path) -> None:
        """Put the provisioned device's files on the rig.

        ``device_dir`` is `edge-agent provision` output for an agent, or the ``board`` dir of
        `provision --target esp32` for an ESP32.
        """

    @abc.abstractmethod
    def start(self) -> None:
        """Start the device (process start / board boot)."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Clean stop (SIGTERM / soft reset)."""

    @abc.abstractmethod
    def kill(self) -> None:
        """Power cut: SIGKILL for a process, a hard reset for a board."""

    @abc.abstractmethod
    def alive(self) -> bool:
        """Whether the device is running."""

    @abc.abstractmethod
    def logs(self) -> str:
        """Everything the rig printed so far."""

    @abc.abstractmethod
    def read_file(self, path: str) -> bytes:
        """A file of the rig's data dir (agent) or flash (ESP32), relative to it."""

    @abc.abstractmethod
    def write_file(self, path: str, data: bytes) -> None:
        """Write a file of the rig's data dir or flash, relative to it."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release everything (processes, ports, temp dirs). Idempotent."""

    # -- optional capabilities: real rigs may lack them ------------------------------------

    def set_clock_offset_s(self, offset_s: int) -> None:
        """Shift the device's wall clock by ``offset_s`` (from 0: not cumulative), while it
        runs, as an RTC or NTP jump would; its monotonic clock is not touched."""
        raise NotImplementedError(f"{self.name} cannot shift its wall clock")

    def inject_sensor_fault(self, fault: str) -> None:
        """Make the sensor misbehave: ``"i2c_error"``, ``"stuck"`` or ``"none"`` (clear)."""
        raise NotImplementedError(f"{self.name} cannot inject sensor faults")

    def connect_url(self, broker_url: str) -> str:
        """The broker URL to provision the device with (a virtual rig in a network namespace
        reaches the broker through a relay on its link)."""
        return broker_url

    def cut_link(self) -> None:
        """Partition the device from the broker without touching either."""
        raise NotImplementedError(f"{self.name} cannot cut its network link")

    def heal_link(self) -> None:
        """Undo cut_link() and impair_link()."""
        raise NotImplementedError(f"{self.name} cannot restore its network link")

    def impair_link(self, delay_ms: int, loss_pct: float) -> str:
        """Add delay and loss to the device's link; returns how ("tc netem", ...)."""
        raise NotImplementedError(f"{self.name} cannot impair its network link")

    def memory_kb(self) -> int:
        """The device's resident memory (RSS for a process, heap used on a board) in KiB."""
        raise NotImplementedError(f"{self.name} cannot report its memory")

    def __enter__(self) -> Rig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

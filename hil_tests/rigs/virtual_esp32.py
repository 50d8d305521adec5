"""The virtual ESP32 rig: the firmware in the MicroPython unix port (tools/virtual_esp32.py), in
a network namespace of its own like the virtual agent, with fault injection on its simulated
hardware (hil_tests/rigs/esp32_main.py: I2C errors, a stuck sensor, a wall clock offset).

Its counters are read from its flash: the outbox log, replayed by the firmware's own outbox
module loaded in CPython (the files of a board are the board's word, as status.json is the
agent's).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from agent.provision_esp32 import firmware_module
from hil_tests.faults.netns import NetNs
from hil_tests.faults.relay import Relay
from hil_tests.rigs.base import KIND_ESP32, Counters, Rig, RigError
from hil_tests.rigs.link import NamespacedLink
from tools import firmware_build
from tools.virtual_esp32 import VirtualEsp32

HEAP = "320k"
"""As tests/firmware/test_rig.py: the measured working heap with a margin for model updates."""
MAIN = Path(__file__).with_name("esp32_main.py")
SENSOR_FAULTS = ("none", "i2c_error", "stuck")


class _ReadOnlyFlash:
    """storage.FileStorage's methods over a copy of a log: replay reads, writes go nowhere."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, name: str) -> bytes | None:
        return self.data if name == "outbox.log" else None

    def size(self, name: str) -> int:
        return len(self.data) if name == "outbox.log" else -1

    def remove(self, name: str) -> None:
        pass

    def write(self, name: str, data: bytes) -> None:
        pass

    def append(self, name: str, data: bytes) -> None:
        pass

    def rename(self, old: str, new: str) -> None:
        pass


class VirtualEsp32Rig(NamespacedLink, Rig):
    kind = KIND_ESP32

    def __init__(
        self,
        workdir: Path,
        netns: bool = False,
        broker: tuple[str, int] = ("127.0.0.1", 1883),
        interval_s: float = 1.0,
        lib_cache: Path | None = None,
        **_opts: object,
    ) -> None:
        self.name = "virtual-esp32"
        self.device_id = ""
        self.workdir = workdir
        self.interval_s = float(max(1, round(interval_s)))  # the firmware counts whole seconds
        self.board: VirtualEsp32 | None = None
        self.lib_cache = lib_cache
        self._ns: NetNs | None = None
        self.relay: Relay | None = None
        if netns:
            self._ns = NetNs.allocate()
            try:
                self.relay = Relay(self._ns.host_ip, broker)
            except OSError:
                self._ns.close()
                raise
        self._closed = False

    def connect_url(self, broker_url: str) -> str:
        return self.relay.url if self.relay is not None else broker_url

    def _need(self) -> VirtualEsp32:
        if self.board is None:
            raise RigError(f"{self.name}: nothing installed")
        return self.board

    def install(self, device_dir: Path) -> None:
        if not (device_dir / "config.json").exists():
            raise RigError(
                f"{device_dir} has no config.json: not `provision --target esp32` output"
            )
        if self.workdir.exists():
            shutil.rmtree(self.workdir / "flash", ignore_errors=True)
        self.board = VirtualEsp32(
            device_dir,
            self.workdir,
            heapsize=HEAP,
            prefix=self._ns.prefix() if self._ns is not None else None,
            main=MAIN,
        )
        if self.lib_cache is not None:  # compile the library once a session, not per scenario
            if not self.lib_cache.exists():
                firmware_build.compile_lib(self.lib_cache, firmware_build.host_arch())
            self.workdir.mkdir(parents=True, exist_ok=True)
            if not self.board.lib.exists():
                self.board.lib.symlink_to(self.lib_cache, target_is_directory=True)
        self.board.edit_config("report", "interval_s", int(self.interval_s))
        self.board.edit_config("mqtt", "ack_timeout_s", 3)
        cfg = (self.board.flash / "config.json").read_text()
        import json

        self.device_id = str(json.loads(cfg)["device"]["id"])

    def start(self) -> None:
        self._need().start()

    def stop(self) -> None:
        if self.alive():
            self._need().stop()

    def kill(self) -> None:
        if self.alive():
            self._need().kill()

    def alive(self) -> bool:
        return self.board is not None and self.board.running

    def logs(self) -> str:
        return self.board.console() if self.board is not None else ""

    def read_file(self, path: str) -> bytes:
        try:
            return (self._need().flash / path).read_bytes()
        except OSError as exc:
            raise RigError(f"{self.name}: cannot read {path}: {exc}") from exc

    def write_file(self, path: str, data: bytes) -> None:
        target = self._need().flash / path
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".hiltmp")
        tmp.write_bytes(data)
        tmp.replace(target)  # the firmware never reads half a switch file

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.alive():
            self.kill()
        if self.relay is not None:
            self.relay.close()
        if self._ns is not None:
            self._ns.close()

    # -- optional capabilities --------------------------------------------------------------

    def set_clock_offset_s(self, offset_s: int) -> None:
        self.write_file("hil_clock_offset_ms", str(offset_s * 1000).encode())

    def inject_sensor_fault(self, fault: str) -> None:
        if fault not in SENSOR_FAULTS:
            raise ValueError(f"sensor fault {fault!r}: expected one of {SENSOR_FAULTS}")
        self.write_file("hil_sensor_fault", fault.encode())

    def memory_kb(self) -> int:
        board = self._need()
        if board.proc is None or board.proc.poll() is not None:
            raise RigError(f"{self.name} is not running")
        for line in Path(f"/proc/{board.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RigError("no VmRSS in /proc status")


def esp32_counters(rig: Rig) -> Counters:
    """The board's counters from its flash."""
    try:
        data = rig.read_file("outbox.log")
    except RigError:
        return Counters(0, 0, 0, False)
    box = firmware_module("outbox").Outbox(_ReadOnlyFlash(data))
    backlog = len(box)
    log = rig.logs()
    up = log.rfind("connected (session")
    down = max(log.rfind("link lost"), log.rfind("connect failed"), log.rfind("boot "))
    return Counters(
        last_seq=box.numbered_hi,
        last_ack=box.last_ack,
        backlog=backlog,
        connected=rig.alive() and up > down,
        deleted_upto=box.last_ack,
    )

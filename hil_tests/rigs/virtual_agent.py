"""The virtual agent rig: `edge-agent run` as a local process, in a network namespace of its own.

``install`` copies the provisioned device directory (device.key, enrollment.cbor, mqtt.pass,
agent.toml) to the rig's work directory, which is its data dir. With ``netns=True`` (the
default when the bench can make namespaces) the process runs in namespace ``hil-<n>`` and
reaches the broker through the host's relay (hil_tests/faults), so the bench can cut or impair
its link; ``connect_url`` is the address to provision it with.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from hil_tests.faults.netns import NetNs
from hil_tests.faults.relay import Relay
from hil_tests.rigs.agent_main import (
    BROKEN_ENV,
    CLOCK_OFFSET_FILE,
    DATA_ENV,
    SENSOR_FAULT_FILE,
)
from hil_tests.rigs.base import KIND_AGENT, Rig, RigError
from hil_tests.rigs.link import NamespacedLink
from tools.procs import die_with_parent

ROOT = Path(__file__).resolve().parents[2]
SENSOR_FAULTS = ("none", "i2c_error", "stuck")


class VirtualAgentRig(NamespacedLink, Rig):
    kind = KIND_AGENT

    def __init__(
        self,
        workdir: Path,
        netns: bool = False,
        broker: tuple[str, int] = ("127.0.0.1", 1883),
        broken: str = "",
        i2c_imu: bool = False,
        **_opts: object,
    ) -> None:
        self.name = "virtual-agent"
        self.device_id = ""
        self.workdir = workdir
        self.data = workdir / "data"
        self.broken = broken
        self.i2c_imu = i2c_imu
        self.proc: subprocess.Popen[bytes] | None = None
        self._ns: NetNs | None = None
        self.relay: Relay | None = None
        self._clock_offset_s = 0
        self._fault = "none"
        if netns:
            self._ns = NetNs.allocate()
            try:
                self.relay = Relay(self._ns.host_ip, broker)
            except OSError:
                self._ns.close()
                raise
        self._closed = False

    # -- the contract -----------------------------------------------------------------------

    def connect_url(self, broker_url: str) -> str:
        return self.relay.url if self.relay is not None else broker_url

    def install(self, device_dir: Path) -> None:
        if self.data.exists():
            shutil.rmtree(self.data)
        shutil.copytree(device_dir, self.data)
        config = self.data / "agent.toml"
        if not config.exists():
            raise RigError(f"{device_dir} has no agent.toml: not `edge-agent provision` output")
        text = config.read_text()
        if self.i2c_imu:
            # a Pi with an MPU-6050 on I2C: the simulated chip behind agent_main's bus, whose
            # faults the bench switches. Its captures take longer than the simulated source's
            # (a real window of samples), so the other scenarios keep the fast one.
            text = text.replace('source = "sim"', 'source = "mpu6050"')
            config.write_text(text)
        for line in text.splitlines():
            if line.startswith("id = "):
                self.device_id = line.split("=", 1)[1].strip().strip('"')
                break

    def start(self) -> None:
        if self.alive():
            raise RigError(f"{self.name} {self.device_id} is already running")
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(ROOT),
            DATA_ENV: str(self.data),
        }
        if self.broken:
            env[BROKEN_ENV] = self.broken
        prefix = self._ns.prefix() if self._ns is not None else []
        argv = [
            *prefix,
            sys.executable,
            "-m",
            "hil_tests.rigs.agent_main",
            "run",
            "--config",
            str(self.data / "agent.toml"),
            "--offline-ok",
        ]
        with open(self.data / "agent.log", "ab") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                stdout=log,
                stderr=log,
                env=env,
                preexec_fn=die_with_parent,
            )

    def stop(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def _signal(self, sig: int) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            # `ip netns exec` execs the command: the pid is the agent's own.
            self.proc.send_signal(sig)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def logs(self) -> str:
        path = self.data / "agent.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def read_file(self, path: str) -> bytes:
        try:
            return (self.data / path).read_bytes()
        except OSError as exc:
            raise RigError(f"{self.name}: cannot read {path}: {exc}") from exc

    def write_file(self, path: str, data: bytes) -> None:
        target = self.data / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

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
        tmp = self.data / (CLOCK_OFFSET_FILE + ".tmp")
        tmp.write_text(str(offset_s * 1000))
        tmp.replace(self.data / CLOCK_OFFSET_FILE)

    def inject_sensor_fault(self, fault: str) -> None:
        if not self.i2c_imu:
            raise RigError(f"{self.name}: sensor faults need the rig made with i2c_imu=True")
        if fault not in SENSOR_FAULTS:
            raise ValueError(f"sensor fault {fault!r}: expected one of {SENSOR_FAULTS}")
        tmp = self.data / (SENSOR_FAULT_FILE + ".tmp")
        tmp.write_text(fault)
        tmp.replace(self.data / SENSOR_FAULT_FILE)

    def memory_kb(self) -> int:
        if not self.alive():
            raise RigError(f"{self.name} is not running")
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RigError("no VmRSS in /proc status")

"""Running real agents for tests: provisioned with the real CLI, run as real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nacl.signing

from protocol import envelope
from protocol import messages as m
from tools.fleet.bridge import command
from tools.procs import die_with_parent

ROOT = Path(__file__).resolve().parents[2]


def run_cli(
    name: str, *args: str, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run console script `name` (edge-agent, cloud-bridge) to completion."""
    proc = subprocess.run(
        [*command(name), *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{name} {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def cli(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return run_cli("edge-agent", *args, check=check, timeout=timeout)


@dataclass
class Device:
    device_id: str
    dir: Path
    config: Path
    public_key: bytes
    proc: subprocess.Popen[bytes] | None = None

    @property
    def login(self) -> tuple[str, str]:
        """The device's broker account: (device id, the password in mqtt.pass)."""
        return self.device_id, (self.dir / "mqtt.pass").read_text().strip()

    @property
    def verify_key(self) -> nacl.signing.VerifyKey:
        return nacl.signing.VerifyKey(self.public_key)

    def enrollment(self) -> m.Enrollment:
        data = (self.dir / "enrollment.cbor").read_bytes()
        _s, rec = envelope.unseal(data, lambda kid: self.verify_key)
        assert isinstance(rec, m.Enrollment)
        return rec

    def start(self, *extra: str, env: dict[str, str] | None = None) -> Device:
        log = open(self.dir / "agent.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "run", "--config", str(self.config), *extra],
            cwd=ROOT,
            stdout=log,
            stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            preexec_fn=die_with_parent,  # never outlives a killed test run
        )
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.proc = None
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def status(self) -> dict[str, object]:
        out = cli("status", "--config", str(self.config), "--json")
        return dict(json.loads(out.stdout))

    def log(self) -> str:
        path = self.dir / "agent.log"
        return path.read_text(errors="replace") if path.exists() else ""


def provision(
    tmp: Path,
    device_id: str,
    kind: str,
    url: str,
    bridge_key_hex: str,
    fleet: str = "test",
    extra_toml: str = "",
    interval_s: float = 0.2,
    seed: int | None = None,
) -> Device:
    out = tmp / device_id
    args = [
        "provision",
        "--device-id",
        device_id,
        "--fleet",
        fleet,
        "--kind",
        kind,
        "--out",
        str(out),
        "--bridge-key",
        bridge_key_hex,
        "--mqtt-url",
        url,
        "--json",
    ]
    if seed is not None:
        args += ["--seed", str(seed)]
    info = json.loads(cli(*args).stdout)
    config = Path(info["config"])
    text = config.read_text().replace("interval_s = 60", f"interval_s = {interval_s}")
    config.write_text(text + "\n" + extra_toml)
    return Device(device_id, out, config, bytes.fromhex(info["public_key"]))


def wait(predicate, timeout_s: float = 30, step_s: float = 0.1) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return False

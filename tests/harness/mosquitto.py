"""A private Mosquitto per test (or per session) on an ephemeral port, with stop/start/restart.

The broker runs from PATH with its own config file, persistence directory and log in a temporary
directory, so fault tests can stop it, restart it and read its log without touching any other
broker on the machine.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    """A TCP port that was free a moment ago (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, up: bool, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.02)
    raise TimeoutError(f"port {port} did not go {'up' if up else 'down'} in {timeout_s} s")


@dataclass
class Mosquitto:
    """One private broker. `persistence=False` makes a restart lose every queued message."""

    workdir: Path
    port: int = field(default_factory=free_port)
    persistence: bool = True
    max_queued_messages: int = 1000
    extra_config: str = ""
    proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    def _write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            f"max_queued_messages {self.max_queued_messages}",
            "set_tcp_nodelay true",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # otherwise it drops to 'mosquitto', who cannot write here
        conf.write_text("\n".join(lines) + "\n" + self.extra_config)
        return conf

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise RuntimeError(
                "mosquitto is not installed: run .ci/run or apt-get install mosquitto"
            )
        conf = self._write_config()
        self.proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            _wait_port(self.port, up=True, timeout_s=10)
        except TimeoutError:
            self.stop()
            log = self.log_path.read_text() if self.log_path.exists() else "(no log)"
            raise RuntimeError(f"mosquitto did not start on port {self.port}:\n{log}") from None

    def stop(self) -> None:
        """Graceful stop (SIGTERM): a persistent broker saves its database."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        _wait_port(self.port, up=False, timeout_s=5)

    def kill(self) -> None:
        """Crash (SIGKILL): nothing is saved."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

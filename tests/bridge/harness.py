"""The bridge as a real process (`cloud-bridge run`), set up with the real CLI.

On a secured harness broker (the default, tests/conftest.py) the bridge logs in with its own
account and keeps the broker's password and ACL files current itself ([broker] dir and
pid_file), as in production; `login` makes further accounts for a test's own clients.
"""

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

from cloud_bridge.store import Store, open_store
from tests.agent.harness import Device, provision, run_cli
from tests.harness.mosquitto import Mosquitto
from tools.procs import die_with_parent

ROOT = Path(__file__).resolve().parents[2]
READY = ": connected, serving fleet "  # the bridge's log line once it subscribed


def bridge_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_cli("cloud-bridge", *args, check=check)


@dataclass
class Bridge:
    data: Path
    public_key_hex: str
    store_url: str
    instance: str = "bridge-1"
    proc: subprocess.Popen[bytes] | None = None
    config: Path | None = None

    @classmethod
    def create(
        cls,
        data: Path,
        broker_url: str,
        store_url: str | None = None,
        fleet: str = "test",
        instance: str = "bridge-1",
        share_group: str = "",
        extra: str = "",
    ) -> Bridge:
        data.mkdir(parents=True, exist_ok=True)
        store_url = store_url or str(data / "bridge.sqlite3")
        store_line = (
            f'dsn = "{store_url}"'
            if store_url.startswith("postgres")
            else (f'path = "{store_url}"')
        )
        broker = Mosquitto.running_at(broker_url)
        secure = broker is not None and broker.secure
        login = f'username = "{instance}"\npassword_file = "{instance}.pass"\n' if secure else ""
        managed = ""
        if broker is not None and secure:
            managed = f'\n[broker]\ndir = "{broker.auth_dir}"\npid_file = "{broker.pid_file}"\n'
        config = data / f"{instance}.toml"
        config.write_text(
            f'[bridge]\nid = "{instance}"\nfleet = "{fleet}"\n\n[mqtt]\nurl = "{broker_url}"\n'
            + (f'share_group = "{share_group}"\n' if share_group else "")
            + login
            + f"\n[store]\n{store_line}\n\n[ingest]\nbatch_wait_ms = 2\n{managed}{extra}"
        )
        # init makes the key (one per data directory), the schema and this instance's broker
        # account, and writes the broker's files.
        info = json.loads(
            bridge_cli("init", "--data", str(data), "--config", str(config), "--json").stdout
        )
        return cls(data, info["public_key"], store_url, instance, None, config)

    def login(self, name: str, role: str = "observer") -> str:
        """A further broker account for a test's own client; its password. On an open broker
        the account is stored but nothing checks it."""
        path = self.data / f"{name}.pass"
        if path.exists():
            return path.read_text().strip()
        bridge_cli(
            "broker-account", name, "--role", role, "--password-file", str(path),
            "--data", str(self.data), "--config", str(self.config),
        )  # fmt: skip
        return path.read_text().strip()

    @property
    def key(self) -> nacl.signing.SigningKey:
        return nacl.signing.SigningKey(bytes.fromhex((self.data / "bridge.key").read_text()))

    def start(self, ready_s: float = 20.0) -> Bridge:
        """Start the process and wait (up to `ready_s`, without failing) until it says it
        subscribed: it loads the risk model first, which takes seconds on a loaded machine, and
        a message published before its subscription would never reach it."""
        connected = self.log().count(READY)
        log = open(self.data / f"{self.instance}.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cloud_bridge.cli",
                "run",
                "--data",
                str(self.data),
                "--config",
                str(self.config),
            ],
            cwd=ROOT,
            stdout=log,
            stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=die_with_parent,  # never outlives a killed test run
        )
        deadline = time.monotonic() + ready_s
        while self.log().count(READY) <= connected and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.proc = None
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def log(self) -> str:
        path = self.data / f"{self.instance}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def store(self) -> Store:
        return open_store(self.store_url)

    def enroll(self, device: Device, user: str) -> None:
        bridge_cli(
            "devices",
            "enroll",
            str(device.dir / "enrollment.cbor"),
            "--user",
            user,
            "--data",
            str(self.data),
            "--config",
            str(self.config),
        )

    def open_pool(self, user: str, limit_fen: int = 5_000_000) -> None:
        bridge_cli(
            "pool",
            "open",
            "--user",
            user,
            "--limit",
            str(limit_fen),
            "--key",
            f"open-{user}",
            "--db",
            self.store_url,
            "--no-publish",  # set-up: the tests that watch pool states open theirs with --data
        )

    def device(
        self, tmp: Path, device_id: str, kind: str, broker_url: str, user: str, **kw: object
    ) -> Device:
        dev = provision(tmp, device_id, kind, broker_url, self.public_key_hex, **kw)  # type: ignore[arg-type]
        self.enroll(dev, user)
        return dev

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        with self.store() as store, store.transaction() as tx:
            return tx.fetchall(sql, params)

"""Simulated devices as real agents: provisioned with `edge-agent provision`, enrolled with
`cloud-bridge devices enroll`, run as `edge-agent run` processes, watched through the status
file each agent writes (the same one `edge-agent status` reads).
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from agent.jsonfile import read_json
from agent.outbox import Outbox
from tools.fleet.bridge import Bridge, command, run_cli
from tools.fleet.plan import DeviceSpec, Tuning, agent_toml, users
from tools.procs import Supervisor

Progress = Callable[[str, int, int], None]
"""progress(what just happened, steps done, steps in all)"""


@dataclass(frozen=True)
class DeviceStatus:
    """A snapshot of one agent: link, sequence numbers and outbox, last device score."""

    link: str  # connected, disconnected, starting, stopped
    last_seq: int  # highest data sequence number used so far
    acked: int  # highest sequence number the bridge has acknowledged end to end
    backlog: int  # messages in the outbox (not yet acknowledged)
    risk_pm: int | None
    reconnects: int = 0


@dataclass
class Device:
    """A provisioned device directory: device.key, enrollment.cbor, agent.toml, its data."""

    spec: DeviceSpec
    dir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def device_id(self) -> str:
        return self.spec.device_id

    @property
    def config(self) -> Path:
        return self.dir / "agent.toml"

    @property
    def outbox_path(self) -> Path:
        return self.dir / "outbox.sqlite3"

    @property
    def log_path(self) -> Path:
        return self.dir / "agent.log"

    def start(self, sup: Supervisor) -> None:
        self.proc = sup.spawn(
            [*command("edge-agent"), "run", "--config", str(self.config), "--offline-ok"],
            self.log_path,
        )

    def stop(self, sup: Supervisor, timeout_s: float = 15) -> int | None:
        if self.proc is None:
            return None
        code = sup.stop(self.proc, timeout_s)
        return code

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def emergency(self, kind: str = "illness", amount_fen: int = 0) -> int:
        """Raise an explicit emergency on the running agent, as its UI would. Returns when it
        was raised (ns since the epoch): the spool file is named after that time."""
        out = run_cli(
            "edge-agent", "emergency", "--config", str(self.config), "--kind", kind,
            "--amount-fen", str(amount_fen),
        )  # fmt: skip
        found = re.search(r"queued \((\d+)-", out)
        return int(found.group(1)) if found else time.time_ns()

    def status(self) -> DeviceStatus:
        doc = read_json(self.dir / "status.json")
        if not isinstance(doc, dict):
            stats = Outbox.peek(self.outbox_path)
            return DeviceStatus(
                "starting" if self.alive else "stopped",
                (stats.next_seq - 1) if stats else 0,
                stats.last_ack if stats else 0,
                stats.backlog if stats else 0,
                None,
            )
        box = doc.get("outbox") or {}
        link = str(doc.get("link", "?")) if doc.get("running") and self.alive else "stopped"
        return DeviceStatus(
            link=link,
            last_seq=int(box.get("next_seq", 1)) - 1,
            acked=int(doc.get("last_ack", 0)),
            backlog=int(box.get("backlog", 0)),
            risk_pm=doc.get("last_risk_pm"),
            reconnects=int(doc.get("reconnects", 0)),
        )

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no agent log)"


def provision(spec: DeviceSpec, root: Path, bridge: Bridge, url: str, tuning: Tuning) -> Device:
    """Make the device's key and enrollment record (kept if they exist) and its agent.toml."""
    out = root / spec.device_id
    if not ((out / "device.key").exists() and (out / "enrollment.cbor").exists()):
        run_cli(
            "edge-agent", "provision", "--device-id", spec.device_id, "--fleet", bridge.fleet,
            "--kind", spec.kind, "--out", str(out), "--seed", str(spec.seed),
            "--json",
        )  # fmt: skip
    device = Device(spec, out)
    device.config.write_text(agent_toml(spec, bridge.fleet, bridge.public_key_hex, url, tuning))
    return device


def set_up(
    specs: Sequence[DeviceSpec],
    root: Path,
    bridge: Bridge,
    url: str,
    tuning: Tuning,
    progress: Progress,
    workers: int = 2,
) -> list[Device]:
    """Provision and enroll every device (a few at a time), then open every user's pool.

    Provisioning captures a fingerprint baseline and loads the model: about half a second of
    CPU a device, so two at a time keep a two-core machine busy without starving it.
    """
    user_list = users(specs)
    total = len(specs) + len(user_list)
    done = 0
    lock = threading.Lock()

    def one(spec: DeviceSpec) -> Device:
        nonlocal done
        device = provision(spec, root, bridge, url, tuning)
        bridge.enroll(device.dir / "enrollment.cbor", spec.user)
        with lock:
            done += 1
            progress(
                f"provisioned and enrolled {spec.device_id} ({spec.kind}, {spec.user})", done, total
            )
        return device

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        devices = list(pool.map(one, specs))
    for user in user_list:
        result = bridge.apply_pool(user)  # an automated approval, as a new customer gets
        done += 1
        progress(f"pool of {user}: {'approved' if result == 'ok' else 'already open'}", done, total)
    return devices


def clone(
    original: Device, root: Path, bridge: Bridge, url: str, tuning: Tuning, seed: int
) -> Device:
    """A copy of a device's key on other hardware, with a copy of its storage as it is now.

    The clone gets the key, the enrollment record and a consistent snapshot of the outbox (its
    counters), so it carries on numbering where the original is: both then send the same
    sequence numbers with different content, which is what the bridge's seq_conflict check
    catches. Another seed is another board's physics; its own client id keeps an open broker
    from disconnecting one for the other. On a secured broker the clone has the original's
    broker password too, and the broker makes the client id the username, so each connection
    of one takes the other's session over: the copy is seen as well by its reconnect churn.
    """
    out = root / f"{original.device_id}-clone"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name in ("device.key", "enrollment.cbor", "mqtt.pass"):
        if (original.dir / name).exists():
            shutil.copy2(original.dir / name, out / name)
    src = sqlite3.connect(f"file:{original.outbox_path}?mode=ro", uri=True, timeout=5)
    dst = sqlite3.connect(out / "outbox.sqlite3")
    try:
        src.backup(dst)  # a consistent copy of a database that is being written
    finally:
        src.close()
        dst.close()
    device = Device(original.spec, out)
    device.config.write_text(
        agent_toml(
            original.spec,
            bridge.fleet,
            bridge.public_key_hex,
            url,
            tuning,
            seed=seed,
            client_id=f"{original.device_id}-clone",
        )
    )
    return device


def start_all(devices: Sequence[Device], sup: Supervisor, progress: Progress | None = None) -> None:
    for i, device in enumerate(devices, 1):
        device.start(sup)
        if progress:
            progress(f"started {device.device_id}", i, len(devices))


def stop_all(devices: Sequence[Device], sup: Supervisor, timeout_s: float = 20) -> None:
    """SIGTERM every agent at once: each publishes a clean death and closes its outbox."""
    procs = [d.proc for d in devices if d.proc is not None]
    sup.stop_many(procs, timeout_s)


def wait_connected(devices: Sequence[Device], timeout_s: float) -> bool:
    """True once every device's link says connected."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(d.status().link == "connected" for d in devices):
            return True
        time.sleep(0.2)
    return False

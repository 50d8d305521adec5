"""Linux network namespaces for virtual rigs: one namespace per rig, a veth pair to the host.

    host: hil-<n>-h 10.77.<n>.1/30  <-- veth -->  namespace hil-<n>: hil-<n>-d 10.77.<n>.2/30

The rig's process runs in the namespace (``ip netns exec``) and reaches the broker only through
the veth pair and the host's relay on 10.77.<n>.1 (hil_tests/faults/relay.py). So the bench
cuts the link (``ip link set ... down``) and impairs it (``tc netem`` delay, loss, reorder)
without touching the device's process or the broker.

Every namespace is named ``hil-*``: ``sweep()`` deletes stale ones left by a killed run (the
session fixture calls it first), and ``NetNs.close()`` (a fixture finalizer) deletes its own.
Needs root (the bench and CI run as root) and the iproute2 tools.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from dataclasses import dataclass

PREFIX = "hil-"
SUBNET = "10.77"


class NetNsError(RuntimeError):
    """An `ip` or `tc` command failed; the message carries its stderr."""


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise NetNsError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
    return proc


def available() -> str | None:
    """None when namespaces can be made here, else why not (for a clear skip or error)."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    probe = f"{PREFIX}probe"
    made = _run("ip", "netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"cannot create a network namespace (root needed): {made.stderr.strip()}"
    _run("ip", "netns", "del", probe, check=False)
    return None


@functools.cache
def netem_available() -> bool:
    """Whether the kernel has the netem queueing discipline (some VM kernels are built
    without it; the relay then emulates delay and loss, see relay.py)."""
    if shutil.which("tc") is None:
        return False
    name = f"{PREFIX}netemprobe"
    _run("ip", "link", "add", name, "type", "dummy", check=False)
    try:
        return _run("tc", "qdisc", "add", "dev", name, "root", "netem", check=False).returncode == 0
    finally:
        _run("ip", "link", "del", name, check=False)


def sweep() -> list[str]:
    """Delete every ``hil-*`` namespace and host link left by an earlier run; their names."""
    gone: list[str] = []
    listed = _run("ip", "netns", "list", check=False).stdout.split("\n")
    for line in listed:
        name = line.split(" ")[0].strip()
        if name.startswith(PREFIX):
            _run("ip", "netns", "del", name, check=False)
            gone.append(name)
    links = _run("ip", "-o", "link", "show", check=False).stdout.split("\n")
    for line in links:
        parts = line.split(": ")
        if len(parts) > 1 and parts[1].startswith(PREFIX):
            link = parts[1].split("@")[0]
            _run("ip", "link", "del", link, check=False)
            gone.append(link)
    return gone


@dataclass
class NetNs:
    """One namespace with its veth pair; ``index`` (1..250) picks the /30 subnet."""

    index: int
    closed: bool = False

    @property
    def name(self) -> str:
        return f"{PREFIX}{self.index}"

    @property
    def host_if(self) -> str:
        return f"{PREFIX}{self.index}-h"

    @property
    def dev_if(self) -> str:
        return f"{PREFIX}{self.index}-d"

    @property
    def host_ip(self) -> str:
        """The host's end: where the device reaches the relay to the broker."""
        return f"{SUBNET}.{self.index}.1"

    @property
    def dev_ip(self) -> str:
        return f"{SUBNET}.{self.index}.2"

    @classmethod
    def create(cls, index: int) -> NetNs:
        if not 1 <= index <= 250:
            raise NetNsError(f"namespace index {index} must be from 1 to 250")
        ns = cls(index)
        try:
            _run("ip", "netns", "add", ns.name)
            _run("ip", "link", "add", ns.host_if, "type", "veth", "peer", "name", ns.dev_if)
            _run("ip", "link", "set", ns.dev_if, "netns", ns.name)
            _run("ip", "addr", "add", f"{ns.host_ip}/30", "dev", ns.host_if)
            _run("ip", "link", "set", ns.host_if, "up")
            ns.exec_ok("ip", "addr", "add", f"{ns.dev_ip}/30", "dev", ns.dev_if)
            ns.exec_ok("ip", "link", "set", ns.dev_if, "up")
            ns.exec_ok("ip", "link", "set", "lo", "up")
        except NetNsError:
            ns.close()
            raise
        return ns

    def prefix(self) -> list[str]:
        """The argv prefix that runs a command inside the namespace."""
        return ["ip", "netns", "exec", self.name]

    def exec_ok(self, *argv: str) -> str:
        return _run(*self.prefix(), *argv).stdout

    # -- faults ---------------------------------------------------------------------------

    def cut(self) -> None:
        """Partition: both ends of the link down; nothing passes either way."""
        self.exec_ok("ip", "link", "set", self.dev_if, "down")
        _run("ip", "link", "set", self.host_if, "down")

    def heal(self) -> None:
        """Undo cut(): both ends up again (addresses and routes come back with them)."""
        _run("ip", "link", "set", self.host_if, "up")
        self.exec_ok("ip", "link", "set", self.dev_if, "up")

    def netem(self, delay_ms: int = 0, loss_pct: float = 0.0, reorder_pct: float = 0.0) -> None:
        """Impair both directions with `tc netem` (needs netem_available())."""
        args = ["netem"]
        if delay_ms:
            args += ["delay", f"{delay_ms}ms"]
        if loss_pct:
            args += ["loss", f"{loss_pct}%"]
        if reorder_pct and delay_ms:
            args += ["reorder", f"{reorder_pct}%"]
        _run("tc", "qdisc", "replace", "dev", self.host_if, "root", *args)
        self.exec_ok("tc", "qdisc", "replace", "dev", self.dev_if, "root", *args)

    def clear_netem(self) -> None:
        _run("tc", "qdisc", "del", "dev", self.host_if, "root", check=False)
        _run(*self.prefix(), "tc", "qdisc", "del", "dev", self.dev_if, "root", check=False)

    def close(self) -> None:
        """Delete the namespace (its end of the veth goes with it, and so the pair)."""
        if self.closed:
            return
        self.closed = True
        _run("ip", "netns", "del", self.name, check=False)
        _run("ip", "link", "del", self.host_if, check=False)

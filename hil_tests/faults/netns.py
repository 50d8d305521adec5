"""Linux network namespaces for virtual rigs: one namespace per rig, a veth pair to the host.

    host: hil-<n>-h 10.77.<n>.1/30  <-- veth -->  namespace hil-<n>: hil-<n>-d 10.77.<n>.2/30

The rig's process runs in the namespace (``ip netns exec``) and reaches the broker only through
the veth pair and the host's relay on 10.77.<n>.1 (hil_tests/faults/relay.py). So the bench
cuts the link (``ip link set ... down``) and impairs it (``tc netem`` delay, loss, reorder)
without touching the device's process or the broker.

Every namespace is named ``hil-<n>`` and its owner's pid is kept in /tmp/hil-netns/: ``sweep()``
deletes those whose owner is gone (a killed run; the session fixture calls it first, and it
leaves a concurrent run's alone), and ``NetNs.close()`` (a fixture finalizer) deletes its own.
Needs root (the bench and CI run as root) and the iproute2 tools.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PREFIX = "hil-"
SUBNET = "10.77"
OWNERS = Path("/tmp/hil-netns")
MAX_INDEX = 250


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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner(name: str) -> int | None:
    try:
        return int((OWNERS / name).read_text())
    except (OSError, ValueError):
        return None


def _namespaces() -> list[str]:
    listed = _run("ip", "netns", "list", check=False).stdout.split("\n")
    return [line.split(" ")[0].strip() for line in listed if line.startswith(PREFIX)]


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    OWNERS.mkdir(parents=True, exist_ok=True)
    with open(OWNERS / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def sweep() -> list[str]:
    """Delete every ``hil-*`` namespace (and its host link) whose owning process is gone."""
    gone: list[str] = []
    with _locked():
        for name in _namespaces():
            owner = _owner(name)
            if owner is None or not _alive(owner):
                _run("ip", "netns", "del", name, check=False)
                _run("ip", "link", "del", f"{name}-h", check=False)
                (OWNERS / name).unlink(missing_ok=True)
                gone.append(name)
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
    def allocate(cls) -> NetNs:
        """A namespace on the lowest free index, owned by this process."""
        with _locked():
            used = set(_namespaces())
            for index in range(1, MAX_INDEX + 1):
                if f"{PREFIX}{index}" not in used:
                    ns = cls(index)
                    _run("ip", "netns", "add", ns.name)
                    (OWNERS / ns.name).write_text(str(os.getpid()))
                    break
            else:
                raise NetNsError(f"all {MAX_INDEX} hil namespaces are in use: run sweep()")
        try:
            ns._wire()
        except NetNsError:
            ns.close()
            raise
        return ns

    def _wire(self) -> None:
        _run("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.dev_if)
        _run("ip", "link", "set", self.dev_if, "netns", self.name)
        _run("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        _run("ip", "link", "set", self.host_if, "up")
        self.exec_ok("ip", "addr", "add", f"{self.dev_ip}/30", "dev", self.dev_if)
        self.exec_ok("ip", "link", "set", self.dev_if, "up")
        self.exec_ok("ip", "link", "set", "lo", "up")

    def prefix(self) -> list[str]:
        """The argv prefix that runs a command inside the namespace."""
        return ["ip", "netns", "exec", self.name]

    def exec_ok(self, *argv: str) -> str:
        return _run(*self.prefix(), *argv).stdout

    # -- faults ---------------------------------------------------------------------------

    def cut(self) -> None:
        """Partition: the host's end down. The device's end stays up with its route, so the
        device sees silence (timeouts), as behind a dead uplink, not an error it can act on."""
        _run("ip", "link", "set", self.host_if, "down")

    def heal(self) -> None:
        """Undo cut(): the host's end up again (its address and route come back with it)."""
        _run("ip", "link", "set", self.host_if, "up")

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
        (OWNERS / self.name).unlink(missing_ok=True)

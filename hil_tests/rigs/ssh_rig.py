"""A real Raspberry Pi (any Linux host) on the bench over SSH: install, start, stop, kill, logs.

    rig = SshRig("pi-bench-1.local", user="pi", key=Path("~/.ssh/bench_ed25519"))
    rig.install(Path("var/pi-1"))   # the project's wheel into VENV, the device dir into VENV/device
    rig.start()                     # edge-agent run, in the background (nohup), pid in agent.pid
    rig.logs(); rig.alive()
    rig.kill()                      # SIGKILL: a power cut as far as the agent can tell
    rig.read_file("outbox.sqlite3")

Only the system's `ssh` is used (OpenSSH client, no Python SSH library): batch mode (a key,
never a password prompt), a connect timeout, host keys checked against the operator's
known_hosts (or `known_hosts=`), and one shared connection (ControlMaster) for every command
until close(). The wheel is built here with `pip wheel --no-deps` from this
checkout, so the Pi runs exactly the code under test; pip on the Pi fetches its dependencies
(piwheels has them for the Pi's ARM) unless `install_deps=False`.

Layout on the host: VENV (a venv, `~/edge-agent` by default), VENV/device (the provisioned
device dir: agent.toml, keys, the agent's data), VENV/device/agent.log and agent.pid.
"""

from __future__ import annotations

import functools
import io
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

try:  # the rig contract (hil_tests/rigs/base.py) once the HIL suite is there
    from hil_tests.rigs.base import KIND_AGENT, Rig, RigError
except ImportError:  # pragma: no cover - the drivers stand alone before it lands
    KIND_AGENT = "agent"
    Rig = object  # type: ignore[assignment,misc,unused-ignore]

    class RigError(Exception):  # type: ignore[no-redef,unused-ignore]
        """A rig could not do what was asked."""


ROOT = Path(__file__).resolve().parents[2]
CONNECT_TIMEOUT_S = 10
COMMAND_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20
CONTROL_PERSIST_S = 60  # the shared connection outlives an idle minute, no more
SSH_FAILED = 255  # ssh's own exit status: the connection or the login failed


class SshRig(Rig):  # type: ignore[misc,valid-type,unused-ignore]
    """One Linux agent host over SSH. `venv`: the host's directory for the agent ("~/..." is
    the login's home). `known_hosts`: check the host key against this file instead of
    ~/.ssh/known_hosts. `python`: the host's interpreter that makes the venv."""

    kind = KIND_AGENT

    def __init__(
        self,
        host: str,
        user: str | None = None,
        port: int = 22,
        key: Path | None = None,
        venv: str = "~/edge-agent",
        *,
        known_hosts: Path | None = None,
        python: str = "python3",
        install_deps: bool = True,
        connect_timeout_s: int = CONNECT_TIMEOUT_S,
    ) -> None:
        if user is None and "@" in host:  # make_rig passes ssh:USER@HOST's part as the host
            user, host = host.rsplit("@", 1)
        self.host = host
        self.user = user
        self.port = port
        self.key = key
        self.venv = venv.rstrip("/")
        self.known_hosts = known_hosts
        self.python = python
        self.install_deps = install_deps
        self.connect_timeout_s = connect_timeout_s
        self.name = f"ssh:{user + '@' if user else ''}{host}"
        self.device_id = ""
        self._control_dir: str | None = None

    # -- the rig contract ---------------------------------------------------------------------

    def install(self, device_dir: Path) -> None:
        """Build this checkout's wheel, install it into the host's venv, copy the device dir.

        `device_dir`: `edge-agent provision --out DIR` (agent.toml and the device's keys)."""
        config = device_dir / "agent.toml"
        if not config.is_file():
            raise RigError(
                f"{device_dir} has no agent.toml: make it with edge-agent provision --out DIR"
            )
        device_id = _toml_id(config)
        wheel = build_wheel()
        if self.alive():
            raise RigError(f"{self.name}: the agent is running: stop() it before install()")
        # one ssh for the files (a tar stream: modes kept, since the agent refuses a key
        # others can read), one for pip
        self.run(
            f"mkdir -p {self._q('device')} {self._q('wheels')} && "
            f"rm -f {self._q('device/agent.pid')} && "
            f"tar -x --no-same-owner -f - -C {self._q('')} && "
            f"{{ test -x {self._q('bin/pip')} || "
            f"{shlex.quote(self.python)} -m venv {self._q('')}; }}",
            data=_tar(device_dir, wheel),
            timeout=600,
        )
        deps = "" if self.install_deps else "--no-deps "
        self.run(
            f"{self._q('bin/pip')} install --quiet --disable-pip-version-check "
            f"--force-reinstall {deps}{self._q('wheels/' + wheel.name)}",
            timeout=900,
        )
        self.device_id = device_id

    def start(self) -> None:
        """`edge-agent run` in the background, detached from the SSH session (setsid nohup);
        its output appends to device/agent.log, its pid goes to device/agent.pid."""
        if self.alive():
            raise RigError(f"{self.name}: the agent is already running")
        self.run(
            f"cd {self._q('device')} && {{ PYTHONUNBUFFERED=1 setsid nohup "
            f"{self._q('bin/edge-agent')} run --config agent.toml "
            ">>agent.log 2>&1 </dev/null & echo $! > agent.pid; }"
        )

    def stop(self) -> None:
        """SIGTERM, and wait for the agent to finish (it says goodbye); SIGKILL after
        STOP_TIMEOUT_S."""
        self._signal("TERM", STOP_TIMEOUT_S)

    def kill(self) -> None:
        """SIGKILL: the agent gets no chance to flush anything."""
        self._signal("KILL", 5)

    def alive(self) -> bool:
        """The pid in device/agent.pid is a running process."""
        return (
            self.run(
                f"kill -0 $(cat {self._q('device/agent.pid')} 2>/dev/null) 2>/dev/null", check=False
            ).returncode
            == 0
        )

    def logs(self) -> str:
        return self.run(
            f"cat {self._q('device/agent.log')} 2>/dev/null", check=False
        ).stdout.decode("utf-8", "replace")

    def read_file(self, path: str) -> bytes:
        """A file of the device dir (the agent's data dir), bytes exactly."""
        return self.run(f"cat {self._q(self._device_path(path))}").stdout

    def write_file(self, path: str, data: bytes) -> None:
        self._copy_in(data, self._device_path(path))

    def memory_kb(self) -> int:
        """The agent's resident memory (RSS) in KiB, from the host's ps."""
        out = self.run(
            f"ps -o rss= -p $(cat {self._q('device/agent.pid')} 2>/dev/null)", check=False
        ).stdout.strip()
        if not out.isdigit():
            raise RigError(f"{self.name}: the agent is not running")
        return int(out)

    def close(self) -> None:
        """End the shared connection (the agent keeps running on the host). Idempotent."""
        if self._control_dir is None:
            return
        subprocess.run(
            [*self.ssh_args()[:-1], "-O", "exit", self.host], capture_output=True, timeout=10
        )
        shutil.rmtree(self._control_dir, ignore_errors=True)
        self._control_dir = None

    def __enter__(self) -> SshRig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- ssh ------------------------------------------------------------------------------------

    def ssh_args(self) -> list[str]:
        """The ssh command line up to the remote command (also for an operator to try)."""
        args = [
            "ssh", "-p", str(self.port),
            "-o", "BatchMode=yes",  # a key or nothing: never a password prompt
            "-o", f"ConnectTimeout={self.connect_timeout_s}",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "ServerAliveInterval=5",
            "-o", "ServerAliveCountMax=2",
        ]  # fmt: skip
        if self.known_hosts is not None:
            args += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        if self.key is not None:
            args += ["-i", str(self.key.expanduser()), "-o", "IdentitiesOnly=yes"]
        if self.user:
            args += ["-l", self.user]
        if self._control_dir is not None:  # one connection for all commands until close()
            args += [
                "-o", "ControlMaster=auto",
                "-o", f"ControlPath={self._control_dir}/master",
                "-o", f"ControlPersist={CONTROL_PERSIST_S}",
            ]  # fmt: skip
        return [*args, self.host]

    def run(
        self, command: str, *, data: bytes = b"", check: bool = True, timeout: float | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """Run a shell command on the host; RigError with ssh's reason when it cannot connect
        or log in (always), or when the command fails (`check`)."""
        limit = timeout or COMMAND_TIMEOUT_S
        if self._control_dir is None:
            self._control_dir = tempfile.mkdtemp(prefix="hil-ssh-")
        try:
            proc = subprocess.run(
                [*self.ssh_args(), command], input=data, capture_output=True, timeout=limit
            )
        except subprocess.TimeoutExpired as exc:
            raise RigError(f"{self.name}: no answer within {limit:g} s to: {command}") from exc
        if proc.returncode == SSH_FAILED:
            raise RigError(f"{self.name}: {_explain(proc.stderr.decode(errors='replace'))}")
        if check and proc.returncode != 0:
            raise RigError(
                f"{self.name}: `{command}` failed ({proc.returncode}): "
                f"{proc.stderr.decode(errors='replace').strip()[-500:]}"
            )
        return proc

    # -- internals ------------------------------------------------------------------------------

    def _q(self, rel: str) -> str:
        """VENV/rel for a remote shell: quoted, with ~ left for the shell to expand."""
        path = f"{self.venv}/{rel}" if rel else self.venv
        if path.startswith("~/"):
            return '"$HOME"/' + shlex.quote(path[2:])
        return shlex.quote(path)

    def _copy_in(self, data: bytes, rel: str, mode: int = 0o600) -> None:
        """Write bytes to VENV/rel (through a temporary name: a reader never sees half)."""
        part, final = self._q(rel + ".part"), self._q(rel)
        self.run(
            f"umask 077 && cat > {part} && chmod {mode & 0o777:o} {part} && mv {part} {final}",
            data=data,
        )

    def _device_path(self, path: str) -> str:
        if path.startswith("/") or ".." in path.split("/"):
            raise RigError(f"{self.name}: {path!r} must be relative to the device directory")
        return f"device/{path}"

    def _signal(self, sig: str, timeout_s: int) -> None:
        pid = self._q("device/agent.pid")
        # signal the pid, wait up to timeout_s for it to go, SIGKILL it if it did not
        self.run(
            f"p=$(cat {pid} 2>/dev/null) || exit 0; kill -{sig} $p 2>/dev/null || exit 0; "
            f"i=0; while kill -0 $p 2>/dev/null && [ $i -lt {timeout_s * 10} ]; do "
            "sleep 0.1; i=$((i+1)); done; kill -KILL $p 2>/dev/null; true",
            timeout=timeout_s + 30,
        )


def _explain(stderr: str) -> str:
    """ssh's reason, with what to check."""
    text = stderr.strip().splitlines()[-1] if stderr.strip() else "ssh failed"
    hints = (
        ("Permission denied", "the host refused the key: add its .pub to the host's "
         "~/.ssh/authorized_keys (hil_tests/drivers/README.md)"),
        ("Host key verification failed", "the host's key is not in known_hosts or has "
         "changed: ssh-keyscan it once, after checking it"),
        ("Connection refused", "nothing listens on that port: is sshd running?"),
        ("timed out", "no route or the host is down: check its address and network"),
        ("Could not resolve", "no such host name: check the name or use its address"),
    )  # fmt: skip
    for needle, hint in hints:
        if needle in stderr:
            return f"{text} ({hint})"
    return text


def _tar(device_dir: Path, wheel: Path) -> bytes:
    """The files install() puts on the host, as a tar: device/*, wheels/<the wheel>."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for path in sorted(device_dir.iterdir()):
            if path.is_file():
                tar.add(path, f"device/{path.name}")
        tar.add(wheel, f"wheels/{wheel.name}")
    return out.getvalue()


def _toml_id(config: Path) -> str:
    import tomllib

    try:
        return str(tomllib.loads(config.read_text())["device"]["id"])
    except (tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise RigError(f"{config}: no [device] id ({exc})") from exc


@functools.cache
def build_wheel() -> Path:
    """This checkout as a wheel (`pip wheel --no-deps`), once per process."""
    out = Path(tempfile.mkdtemp(prefix="edge-agent-wheel-"))
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    wheels = sorted(out.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        raise RigError(f"pip wheel failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return wheels[0]


__all__ = ["RigError", "SshRig", "build_wheel"]

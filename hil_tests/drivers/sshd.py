"""A stand-in Raspberry Pi for SshRig: OpenSSH's sshd on loopback, on an ephemeral port, with
its own host key and one authorized client key, all generated into a temporary directory.

The client side is as strict as on the bench: the host key is pinned in a generated
known_hosts (StrictHostKeyChecking), the login is by key only (BatchMode). The "Pi" is this
machine, logged in as the current user.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tools.broker import free_port


def find_sshd() -> str:
    found = shutil.which("sshd") or ("/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else None)
    if found is None:
        raise FileNotFoundError("no sshd: apt-get install openssh-server (./dev test does)")
    return found


def keygen(path: Path) -> str:
    """A new ed25519 key pair at `path` (no passphrase); its public line."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
        check=True, capture_output=True,
    )  # fmt: skip
    return Path(f"{path}.pub").read_text().strip()


@dataclass
class Sshd:
    """One running sshd; `key` logs in as `user`, `known_hosts` pins its host key."""

    host: str
    port: int
    user: str
    key: Path
    known_hosts: Path
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_sshd(workdir: Path) -> Sshd:
    workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o700)
    host_key = workdir / "host_ed25519"
    host_pub = keygen(host_key)
    client_key = workdir / "client_ed25519.key"
    client_pub = keygen(client_key)
    authorized = workdir / "authorized_keys"
    authorized.write_text(client_pub + "\n")
    authorized.chmod(0o600)
    port = free_port()
    known_hosts = workdir / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_pub.rsplit(' ', 1)[0]}\n")
    config = workdir / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
        f"AuthorizedKeysFile {authorized}\nPidFile {workdir / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "PermitRootLogin prohibit-password\nStrictModes no\nMaxStartups 50\n"
        "MaxSessions 50\nLogLevel VERBOSE\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
    log = workdir / "sshd.log"
    proc = subprocess.Popen([find_sshd(), "-D", "-e", "-f", str(config)], stderr=log.open("wb"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        raise RuntimeError(f"sshd did not listen on {port}: {log.read_text()}")
    return Sshd("127.0.0.1", port, getpass.getuser(), client_key, known_hosts, proc, log)

"""Writing the broker's files and reloading it: the thin I/O around `broker_config`.

Each file is replaced atomically (a 0600 temporary file, fsync, rename: keyfiles'
`write_private`), so Mosquitto never reads half a file, and only when its text changed. After a
change the broker gets SIGHUP, on which Mosquitto re-reads its password and ACL files and
disconnects clients whose credentials no longer pass (a revoked device).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import keyfiles
from cloud_bridge.broker_config import BrokerFiles, render
from cloud_bridge.config import BridgeConfig
from cloud_bridge.errors import BridgeError
from cloud_bridge.store.broker_repo import BrokerAccount


class BrokerReloadError(BridgeError):
    """The broker could not be told to reload (no pid file, a stale pid, no permission)."""


@dataclass(frozen=True)
class Applied:
    """What `apply` did: the files it rewrote and the pid it sent SIGHUP (None: none)."""

    changed: tuple[str, ...]
    reloaded_pid: int | None


def owner_for(path: Path) -> tuple[int, int] | None:
    """Who the rewritten `path` must belong to: the file's owner and group as they are (the
    operator chowned them to the broker's user once), else those of its directory; None when
    that is the writer itself (nothing to change)."""
    st: os.stat_result | None
    try:
        st = path.stat()
    except FileNotFoundError:
        st = path.parent.stat() if path.parent.exists() else None
    if st is None or (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid()):
        return None
    return st.st_uid, st.st_gid


def write(auth_dir: Path, files: BrokerFiles) -> tuple[str, ...]:
    """Write the files whose text changed into `auth_dir`; their names. A rewritten file keeps
    its owner and group (Mosquitto re-reads it on SIGHUP as its own user, after dropping root:
    a file now owned by whoever ran `devices enroll` would lock every client out)."""
    changed = []
    for name, text in files.by_name().items():
        path = auth_dir / name
        data = text.encode()
        try:
            if path.read_bytes() == data:
                continue
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise BridgeError(f"cannot read {path}: {exc.strerror}") from exc
        owner = owner_for(path)
        try:
            keyfiles.write_private(path, data, overwrite=True, owner=owner)
        except PermissionError as exc:
            raise BridgeError(
                f"cannot write {path} for uid {owner[0] if owner else os.geteuid()}: "
                f"{exc.strerror}; run this as root or as the files' owner (the broker reads "
                "them as its own user: docs/operations.md section 4)"
            ) from exc
        except OSError as exc:
            raise BridgeError(f"cannot write {path}: {exc.strerror}") from exc
        changed.append(name)
    return tuple(changed)


def reload(pid_file: Path) -> int:
    """Send SIGHUP to the pid in `pid_file` (Mosquitto's `pid_file`); the pid."""
    try:
        text = pid_file.read_text().strip()
    except OSError as exc:
        raise BrokerReloadError(
            f"cannot read the broker's pid file {pid_file}: {exc.strerror}; is Mosquitto "
            "running with pid_file set? ([broker] pid_file)"
        ) from exc
    if not text.isdigit() or int(text) < 2:
        raise BrokerReloadError(f"{pid_file} does not hold a process id: {text[:20]!r}")
    pid = int(text)
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise BrokerReloadError(
            f"no process {pid} (from {pid_file}): is Mosquitto running?"
        ) from None
    except PermissionError:
        raise BrokerReloadError(f"not allowed to signal process {pid} (from {pid_file})") from None
    return pid


def apply(
    fleet: str,
    accounts: Iterable[BrokerAccount],
    auth_dir: Path,
    *,
    port: int = 1883,
    pid_file: Path | None = None,
    force_reload: bool = False,
) -> Applied:
    """Render, write what changed and reload the broker if anything did (or `force_reload`)."""
    changed = write(auth_dir, render(fleet, accounts, auth_dir, port, pid_file))
    pid = reload(pid_file) if pid_file is not None and (changed or force_reload) else None
    return Applied(changed, pid)


def apply_configured(cfg: BridgeConfig, accounts: Iterable[BrokerAccount]) -> Applied | None:
    """`apply` with the bridge's [broker] settings; None when it manages no broker files."""
    if cfg.broker_dir is None:
        return None
    return apply(
        cfg.fleet,
        accounts,
        cfg.broker_dir,
        port=cfg.broker_port,
        pid_file=cfg.broker_pid_file,
    )

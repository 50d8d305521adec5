"""Releases side by side under the state directory, and the `current` symlink.

    <state>/releases/<version>/    one unpacked release each (the agent's packages)
    <state>/current -> releases/<version>   absent: the base install runs
    <state>/download.part          the download in progress

The outbox, keys and every other state file stay beside these, never inside a release: a
rollback or a removed release cannot take them along. `switch` makes a new symlink and renames
it over `current` (rename(2) is atomic), so a power cut leaves the old link or the new one."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tarfile
from pathlib import Path

from agent.errors import AgentError

RELEASES = "releases"
CURRENT = "current"
DOWNLOAD = "download.part"
MARKER = ".complete"  # written last into an unpacked release


class ReleaseError(AgentError):
    """A release that cannot be unpacked or run."""


def release_dir(state_dir: Path, version: str) -> Path:
    return state_dir / RELEASES / version


def download_path(state_dir: Path) -> Path:
    return state_dir / DOWNLOAD


def current(state_dir: Path) -> str:
    """The release `current` names; "" (the base install) when there is no link."""
    try:
        return Path(os.readlink(state_dir / CURRENT)).name
    except OSError:
        return ""


def switch(state_dir: Path, version: str) -> None:
    """Point `current` at releases/<version> ("" removes it: the base install) atomically."""
    link = state_dir / CURRENT
    if current(state_dir) == version and (version or not link.is_symlink()):
        return
    if not version:
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        _fsync_dir(state_dir)
        return
    tmp = state_dir / f".{CURRENT}.new"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(Path(RELEASES) / version, tmp)
    os.replace(tmp, link)
    _fsync_dir(state_dir)


def digest_of(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 16):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def unpack(state_dir: Path, version: str) -> Path:
    """Unpack the verified download into releases/<version>/ (idempotent): a fresh temporary
    directory, the marker last, then a rename; a directory without its marker is redone."""
    final = release_dir(state_dir, version)
    if (final / MARKER).exists():
        return final
    tmp = state_dir / RELEASES / f".{version}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(final, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with tarfile.open(download_path(state_dir), "r:*") as tar:
            tar.extractall(tmp, filter="data")  # no absolute paths, links out or devices
    except (tarfile.TarError, OSError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ReleaseError(f"cannot unpack release {version}: {exc}") from exc
    (tmp / MARKER).write_text(version + "\n")
    _fsync_tree(tmp)
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    return final


def discard(state_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        download_path(state_dir).unlink()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))

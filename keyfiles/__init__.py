"""Private key files, written one way: whole, durable and readable by the owner alone.

Devices (agent/keys.py) and bridges (cloud_bridge/keyfile.py) keep their Ed25519 keys in the same
format: the 32-byte seed as 64 hex digits and a newline, in a file of mode 0600. The format and
the one writer live here, apart from both, because the bridge never imports the agent and
protocol/ is free of I/O. Each side keeps its own loader, which words its errors for its own
operators and owns what to do about a missing key.

`write_private` is the only function in the project that writes a private key: a 0600 temporary
file in the same directory, fsync, then an atomic rename (or, when the key must not be replaced,
an atomic hard link that fails if the name is taken), then an fsync of the directory. A power cut
leaves the old key or the new one, never a torn file, and at no moment can another user read it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import Final

PRIVATE_MODE: Final = 0o600
SEED_BYTES: Final = 32


def encode_seed(seed: bytes) -> bytes:
    """The key file's contents for an Ed25519 seed: 64 hex digits and a newline."""
    if len(seed) != SEED_BYTES:
        raise ValueError(f"an Ed25519 seed is {SEED_BYTES} bytes, not {len(seed)}")
    return seed.hex().encode() + b"\n"


def decode_seed(text: str) -> bytes:
    """The seed in a key file's text; ValueError says what is wrong (it completes "key file
    <path> ...")."""
    try:
        seed = bytes.fromhex(text.strip())
    except ValueError as exc:
        raise ValueError(f"cannot be read as 64 hex digits: {exc}") from None
    if len(seed) != SEED_BYTES:
        raise ValueError(f"holds {len(seed)} bytes; an Ed25519 seed is {SEED_BYTES}")
    return seed


def is_loose(mode: int) -> bool:
    """True if a file of this mode is readable, writable or runnable by group or others."""
    return bool(mode & (stat.S_IRWXG | stat.S_IRWXO))


def write_private(
    path: Path, data: bytes, *, overwrite: bool = False, owner: tuple[int, int] | None = None
) -> None:
    """Write `data` to `path` durably with mode 0600; FileExistsError if the file exists and
    `overwrite` is false (checked atomically, so two writers cannot both win). `owner`
    (uid, gid) is given to the file before it takes the name, so a reader of another user
    (a broker re-reading its password file) never finds the file under the writer's name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        try:
            os.fchmod(fd, PRIVATE_MODE)  # mkstemp's mode is 0600 already; say so regardless
            if owner is not None:
                os.fchown(fd, *owner)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    fsync_dir(path.parent)


def _link_new(tmp: Path, path: Path) -> None:
    """Give `tmp`'s file the name `path` only if that name is free."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError as exc:
        # A file system without hard links (FAT on an SD card): check, then rename.
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        if path.exists():
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path)) from None
        os.replace(tmp, path)


def fsync_dir(directory: Path) -> None:
    """Make a rename or link in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

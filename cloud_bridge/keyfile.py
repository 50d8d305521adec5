"""The bridge's Ed25519 key: 64 hex digits in a 0600 file in the data directory.

Same file format as a device key (agent/keys.py), kept apart because the bridge never imports
the agent."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import nacl.signing

from cloud_bridge.errors import BridgeError


class KeyFileError(BridgeError):
    """The bridge key is missing, readable by others or malformed."""


def load_or_create(path: Path) -> tuple[nacl.signing.SigningKey, bool]:
    """The key at `path`, creating it (0600) if absent; (key, created)."""
    if path.exists():
        return load(path), False
    path.parent.mkdir(parents=True, exist_ok=True)
    key = nacl.signing.SigningKey.generate()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, bytes(key).hex().encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    return key, True


def load(path: Path) -> nacl.signing.SigningKey:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        text = path.read_text().strip()
    except FileNotFoundError:
        raise KeyFileError(
            f"bridge key {path} does not exist; run: cloud-bridge init --data {path.parent}"
        ) from None
    except OSError as exc:
        raise KeyFileError(f"cannot read bridge key {path}: {exc.strerror}") from exc
    if mode & 0o077:
        raise KeyFileError(
            f"bridge key {path} is readable by others ({mode:04o}); run: chmod 600 {path}"
        )
    try:
        seed = bytes.fromhex(text)
    except ValueError:
        seed = b""
    if len(seed) != 32:
        raise KeyFileError(f"bridge key {path} is not 64 hex digits")
    return nacl.signing.SigningKey(seed)

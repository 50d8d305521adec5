"""The bridge's Ed25519 key: 64 hex digits in a 0600 file in the data directory.

Same file format and the same writer as a device key (the keyfiles package); the loader is
the bridge's own, for its own messages."""

from __future__ import annotations

import stat
from pathlib import Path

import nacl.signing

import keyfiles
from cloud_bridge.errors import BridgeError


class KeyFileError(BridgeError):
    """The bridge key is missing, readable by others or malformed."""


def load_or_create(path: Path) -> tuple[nacl.signing.SigningKey, bool]:
    """The key at `path`, creating it (0600) if absent; (key, created)."""
    if path.exists():
        return load(path), False
    key = nacl.signing.SigningKey.generate()
    try:
        keyfiles.write_private(path, keyfiles.encode_seed(bytes(key)))
    except FileExistsError:  # another process created it since the check above
        return load(path), False
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
    if keyfiles.is_loose(mode):
        raise KeyFileError(
            f"bridge key {path} is readable by others ({mode:04o}); run: chmod 600 {path}"
        )
    try:
        return nacl.signing.SigningKey(keyfiles.decode_seed(text))
    except ValueError:
        raise KeyFileError(f"bridge key {path} is not 64 hex digits") from None

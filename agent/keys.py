"""The device's Ed25519 key: a 32-byte seed in a file only its owner can read.

A key file holds the seed as 64 hex digits and a newline. It is created with mode 0600 and
refused when group or others can read it (like ssh refuses a private key with loose modes).
A rotation writes the next key beside it (`<key>.pending`) and promotes it with an atomic
rename once the bridge has confirmed it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import nacl.signing

import keyfiles
from agent.errors import AgentError
from protocol import cose


class KeyFileError(AgentError):
    """The key file is missing, unreadable, malformed or readable by others."""


def generate(path: Path, *, overwrite: bool = False) -> nacl.signing.SigningKey:
    """Create a new key file (0600) and return the key."""
    key = nacl.signing.SigningKey.generate()
    write(path, key, overwrite=overwrite)
    return key


def write(path: Path, key: nacl.signing.SigningKey, *, overwrite: bool = False) -> None:
    """Write `key` to `path` durably with mode 0600 (keyfiles.write_private)."""
    try:
        keyfiles.write_private(path, keyfiles.encode_seed(bytes(key)), overwrite=overwrite)
    except FileExistsError:
        raise KeyFileError(f"{path} already exists; refusing to replace a device key") from None


def load(path: Path) -> nacl.signing.SigningKey:
    """Read a key file; KeyFileError with the fix when it is missing, loose or malformed."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise KeyFileError(
            f"key file {path} does not exist; create one with "
            "'edge-agent provision' or point [device] key_file at it"
        ) from None
    if keyfiles.is_loose(st.st_mode):
        raise KeyFileError(
            f"key file {path} is readable by others (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"run: chmod 600 {path}"
        )
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"key file {path} cannot be read as 64 hex digits: {exc}") from exc
    try:
        return nacl.signing.SigningKey(keyfiles.decode_seed(text))
    except ValueError as exc:
        raise KeyFileError(f"key file {path} {exc}") from None


def pending_path(path: Path) -> Path:
    return path.with_name(path.name + ".pending")


def promote_pending(path: Path) -> nacl.signing.SigningKey:
    """Make the pending key the device key (atomic rename); returns it."""
    pending = pending_path(path)
    key = load(pending)
    os.replace(pending, path)
    keyfiles.fsync_dir(path.parent)
    return key


def kid(key: nacl.signing.SigningKey) -> bytes:
    return cose.kid_for(key.verify_key)

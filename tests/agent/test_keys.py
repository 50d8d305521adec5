from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from agent import keys
from agent.keys import KeyFileError


def test_generate__0600_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "k" / "device.key"
    key = keys.generate(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert bytes(keys.load(path)) == bytes(key)
    with pytest.raises(KeyFileError, match="already exists"):
        keys.generate(path)


def test_load__missing_world_readable_or_malformed(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    with pytest.raises(KeyFileError, match="does not exist"):
        keys.load(path)
    keys.generate(path)
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        keys.load(path)
    os.chmod(path, 0o600)
    path.write_text("zz" * 32)
    with pytest.raises(KeyFileError, match="64 hex digits"):
        keys.load(path)
    path.write_text("ab" * 16)
    with pytest.raises(KeyFileError, match="holds 16 bytes"):
        keys.load(path)


def test_promote_pending__atomic_swap(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    keys.generate(path)
    new = keys.generate(keys.pending_path(path))
    assert bytes(keys.promote_pending(path)) == bytes(new)
    assert bytes(keys.load(path)) == bytes(new)
    assert not keys.pending_path(path).exists()

"""keyfiles: the key file format, the one durable 0600 writer, and nothing else writing keys."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import keyfiles
from cloud_bridge import keyfile as bridge_keyfile

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that lets everyone read new files, so 0600 must come from the writer."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("open_umask")
def test_write_private__valid_is_0600_whole_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "new" / "device.key"
    keyfiles.write_private(path, b"secret\n")
    assert path.read_bytes() == b"secret\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["device.key"]


def test_write_private__invalid_over_an_existing_file_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    keyfiles.write_private(path, b"first\n")
    with pytest.raises(FileExistsError):
        keyfiles.write_private(path, b"second\n")
    assert path.read_bytes() == b"first\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["device.key"]


@pytest.mark.usefixtures("open_umask")
def test_write_private__overwrite_replaces_and_stays_0600(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    path.write_bytes(b"loose\n")
    os.chmod(path, 0o644)
    keyfiles.write_private(path, b"second\n", overwrite=True)
    assert path.read_bytes() == b"second\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@given(st.binary(min_size=32, max_size=32))
def test_decode_seed__valid_round_trips(seed: bytes) -> None:
    encoded = keyfiles.encode_seed(seed)
    assert encoded == seed.hex().encode() + b"\n"
    assert keyfiles.decode_seed(encoded.decode()) == seed


@given(
    st.one_of(
        st.binary(max_size=64).filter(lambda b: len(b) != 32).map(bytes.hex),
        st.just("zz" * 32),
        st.just("abc"),
    )
)
def test_decode_seed__invalid(text: str) -> None:
    with pytest.raises(ValueError):
        keyfiles.decode_seed(text)


@pytest.mark.parametrize(
    ("mode", "loose"),
    [(0o600, False), (0o400, False), (0o700, False), (0o640, True), (0o604, True), (0o660, True)],
)
def test_is_loose(mode: int, loose: bool) -> None:
    assert keyfiles.is_loose(stat.S_IFREG | mode) is loose


@pytest.mark.usefixtures("open_umask")
def test_bridge_load_or_create__creates_once_0600(tmp_path: Path) -> None:
    path = tmp_path / "bridge.key"
    key, created = bridge_keyfile.load_or_create(path)
    again, created_again = bridge_keyfile.load_or_create(path)
    assert (created, created_again) == (True, False)
    assert bytes(again) == bytes(key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_no_other_module_creates_a_0600_file() -> None:
    sources = [
        p
        for top in ("agent", "cloud_bridge", "protocol", "tools", "confschema")
        for p in (ROOT / top).rglob("*.py")
    ]
    assert sources
    assert [str(p.relative_to(ROOT)) for p in sources if "0o600" in p.read_text()] == []

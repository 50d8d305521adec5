"""The update's download against a real HTTP server: a response cut mid-way resumes with
Range from the persisted offset, a 503 is retried within the budget, a 404 stops at once, a
tampered artefact never gets unpacked (issue 18 item 1)."""

from __future__ import annotations

from pathlib import Path

import nacl.signing
import pytest

from agent.update import release
from agent.update.machine import Phase, Policy
from agent.update.worker import Updater
from tests.agent.update_releases import build, manifest_for
from tests.harness.artefacts import ArtefactServer

BRIDGE = nacl.signing.SigningKey(bytes(range(32)))
POLICY = Policy(retries=3, max_starts=3, trial_ms=60_000)


@pytest.fixture
def server(tmp_path: Path) -> ArtefactServer:
    root = tmp_path / "www"
    root.mkdir()
    build(root, "1.1.0")
    srv = ArtefactServer(root)
    yield srv  # type: ignore[misc]
    srv.close()


def updater(state: Path) -> Updater:
    return Updater(state, bytes(BRIDGE.verify_key), "1.0.0", POLICY, 0.0, False)


def offer(srv: ArtefactServer, name: str = "1.1.0.tar.gz") -> bytes:
    path = srv.root / "1.1.0.tar.gz"
    return manifest_for(path, srv.url(name), "1.1.0").sign(BRIDGE)


def test_a_cut_download_resumes_with_range(tmp_path: Path, server: ArtefactServer) -> None:
    server.cut_after = 100_000  # the first response drops after 100 kB
    up = updater(tmp_path / "state")
    assert up.offer(offer(server)) == "pending"
    state = up.store.load()
    assert state.phase is Phase.TRIAL and state.target == "1.1.0", state
    ranges = [r for _p, r in server.requests]
    assert ranges == ["bytes=0-", "bytes=100000-"]  # resumed where the durable bytes end
    assert (release.release_dir(tmp_path / "state", "1.1.0") / "agent" / "cli.py").exists()
    assert not release.download_path(tmp_path / "state").exists()
    assert up.restart.is_set()


def test_unavailable_is_retried_within_the_budget(tmp_path: Path, server: ArtefactServer) -> None:
    server.unavailable = 2
    up = updater(tmp_path / "state")
    up.offer(offer(server))
    assert up.store.load().phase is Phase.TRIAL
    assert len(server.requests) == 3
    server.unavailable = 10
    up2 = updater(tmp_path / "state2")
    up2.offer(offer(server))
    st = up2.store.load()
    assert st.phase is Phase.IDLE and st.reason == "retries exhausted (last: 503)"
    assert len(server.requests) == 3 + POLICY.retries


def test_not_found_stops_at_once(tmp_path: Path, server: ArtefactServer) -> None:
    up = updater(tmp_path / "state")
    up.offer(offer(server, "missing.tar.gz"))
    st = up.store.load()
    assert st.phase is Phase.IDLE and st.reason == "http 404" and len(server.requests) == 1
    assert not up.restart.is_set() and release.current(tmp_path / "state") == ""


def test_a_tampered_artefact_is_not_installed(tmp_path: Path, server: ArtefactServer) -> None:
    signed = offer(server)
    path = server.root / "1.1.0.tar.gz"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    up = updater(tmp_path / "state")
    up.offer(signed)
    st = up.store.load()
    assert st.phase is Phase.IDLE and st.reason == "sha256 mismatch"
    assert not (tmp_path / "state" / "releases").exists()


def test_a_manifest_not_signed_by_the_bridge_is_refused(
    tmp_path: Path, server: ArtefactServer
) -> None:
    path = server.root / "1.1.0.tar.gz"
    forged = manifest_for(path, server.url("1.1.0.tar.gz"), "1.1.0").sign(
        nacl.signing.SigningKey(bytes(range(1, 33)))
    )
    up = updater(tmp_path / "state")
    assert up.offer(forged).startswith("refused: manifest signature")
    assert up.store.load().phase is Phase.IDLE and server.requests == []

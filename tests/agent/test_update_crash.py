"""A power cut (SIGKILL) at every step of a self-update's download, install, switch and commit,
replayed from each persisted state (issue 18 item 1).

The update runs in-process through the real pieces (agent.update: the store, the worker's
effects, the launcher's `prepare`) against a real HTTP server and real files. `CutStore` cuts
the power at its Nth state write, either just before the write or just after it (the state is
on disk, the effects are not done). Then the device boots again: the launcher prepares (counts
the start, puts `current` right), the release it names runs (resumes the update or watches for
its ack), until the update is committed. At every boot `current` must name a complete release
or the base install, and the outbox and key must be the bytes they were."""

from __future__ import annotations

import hashlib
from pathlib import Path

import nacl.signing
import pytest

from agent.update import release
from agent.update.launch import prepare
from agent.update.machine import Event, Phase, Policy, Transition
from agent.update.store import UpdateStore
from agent.update.worker import Updater
from tests.agent.update_releases import build, manifest_for
from tests.harness.artefacts import ArtefactServer

BRIDGE = nacl.signing.SigningKey(bytes(range(32)))
POLICY = Policy(retries=3, max_starts=3, trial_ms=10**9)
OLD, NEW = "1.0.0", "1.1.0"


class PowerCut(BaseException):
    """Not an Exception: nothing in the agent may catch it, as nothing catches SIGKILL."""


class CutStore(UpdateStore):
    def __init__(self, state_dir: Path, cut_at: int | None, after: bool) -> None:
        super().__init__(state_dir)
        self.cut_at, self.after, self.writes = cut_at, after, 0

    def apply(self, event: Event) -> Transition:
        before = self.load()
        if self.writes == self.cut_at and not self.after:
            self.cut_at = None  # one cut a run
            raise PowerCut
        t = super().apply(event)
        if t.state != before:
            if self.writes == self.cut_at:
                self.cut_at = None
                self.writes += 1
                raise PowerCut
            self.writes += 1
        return t


@pytest.fixture(scope="module")
def artefact(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    out = tmp_path_factory.mktemp("releases")
    path = build(out, NEW)
    return out, path.read_bytes()


def boot(state: Path, version: str, store: UpdateStore) -> Updater:
    """One run of release `version`: resume a half-done update."""
    up = Updater(state, bytes(BRIDGE.verify_key), version, POLICY, 0.0, False)
    up.store = store
    up.on_trial = store.load().phase is Phase.TRIAL and store.load().target == version
    up.resume()
    return up


def run_update(state: Path, server: ArtefactServer, cut_at: int | None, after: bool) -> int:
    """The whole update with one power cut; the number of state writes it made."""
    store = CutStore(state, cut_at, after)
    mf = manifest_for(server.root / f"{NEW}.tar.gz", server.url(f"{NEW}.tar.gz"), NEW).sign(BRIDGE)
    running = OLD
    try:
        up = boot(state, running, store)
        assert up.offer(mf) == "pending"
        assert up.restart.is_set()
    except PowerCut:
        pass
    for _boot in range(6):  # boots until committed (one cut: a few suffice)
        try:
            name, _state = prepare(store)
            assert release.current(state) == name
            if name:
                assert (release.release_dir(state, name) / release.MARKER).exists()
            running = name or OLD  # the base install is the old version
            up = boot(state, running, store)
            if up.restart.is_set():
                continue  # the resumed update switched: boot into the new release
            up.watch_acks(next_seq=100, acked=0)  # this run's first number
            up.watch_acks(next_seq=101, acked=100)  # the bridge acked it
            if store.load().phase is Phase.COMMITTED:
                break
            if store.load().phase is Phase.IDLE and running == OLD:  # cut before the offer
                up.offer(mf)
        except PowerCut:
            continue
    final = store.load()
    assert final.phase is Phase.COMMITTED, final
    assert final.running == NEW and release.current(state) == NEW
    return store.writes


def test_every_cut_ends_committed_on_a_working_release(
    tmp_path: Path, artefact: tuple[Path, bytes]
) -> None:
    root, _data = artefact
    server = ArtefactServer(root)
    try:
        total = run_update(tmp_path / "clean", server, None, False)
        assert total >= 6, total  # offer, offsets, downloaded, unpacked, started, committed
        print(f"{total} state writes; {2 * total} cuts replayed")
        for cut in range(total):
            for after in (False, True):
                state = tmp_path / f"cut-{cut}-{int(after)}"
                state.mkdir()
                outbox, key = state / "outbox.sqlite3", state / "device.key"
                outbox.write_bytes(b"outbox " * 1000)
                key.write_bytes(b"k" * 64)
                sums = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (outbox, key)}
                run_update(state, server, cut, after)
                for p, digest in sums.items():  # never inside a release, never touched
                    assert hashlib.sha256(p.read_bytes()).hexdigest() == digest
    finally:
        server.close()

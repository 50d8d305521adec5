"""The update state on disk: `update.json` in the state directory, written whole and renamed
into place (agent.jsonfile), read-modify-written under an flock so that the agent (commit) and
the launcher (starts, deadline) never lose each other's write."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agent.jsonfile import read_json, write_json_atomic
from agent.update.machine import Event, Transition, UpdateState, step

STATE_FILE = "update.json"
LOCK_FILE = "update.lock"


class UpdateStore:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        self.path = state_dir / STATE_FILE

    def load(self) -> UpdateState:
        return UpdateState.from_json(read_json(self.path))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        # a lock holds no secret (the state directory is 0700)
        fd = os.open(self.dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def apply(self, event: Event) -> Transition:
        """One step of the machine on the persisted state; the new state is durable before
        this returns, and before the caller carries out any effect."""
        with self._locked():
            t = step(self.load(), event)
            if t.changed:
                write_json_atomic(self.path, t.state.to_json())
            return t

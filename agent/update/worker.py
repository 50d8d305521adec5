"""The running agent's side of a self-update: take an offer (the `update` command), download
and unpack on a thread of its own (the main loop keeps sensing and the watchdog keeps being
fed), ask for a restart into the new release, and commit it once a report it made was acked.

Each step goes through the state machine (agent.update.machine) on the persisted state
(agent.update.store): the state is durable before an effect is carried out."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from agent.update import release
from agent.update.fetch import fetch
from agent.update.machine import (
    Acked,
    Discard,
    Effect,
    Fetch,
    Offer,
    Phase,
    Policy,
    Restart,
    Unpack,
    Unpacked,
    UnpackFailed,
    resume,
)
from agent.update.manifest import ManifestError, verify
from agent.update.store import UpdateStore

log = logging.getLogger(__name__)

EXIT_RESTART = 75
"""The agent's exit status after switching to a new release (EX_TEMPFAIL): the launcher
starts `current` again at once."""
RETRY_DELAY_S = 2.0


class Updater:
    def __init__(
        self,
        state_dir: Path,
        bridge_public_key: bytes,
        running_version: str,
        policy: Policy,
        retry_delay_s: float = RETRY_DELAY_S,
        background: bool = True,
    ) -> None:
        """`background`: the work runs on a thread of its own (False: inline, for tests)."""
        self.dir = state_dir
        self.store = UpdateStore(state_dir)
        self.bridge_public_key = bridge_public_key
        self.version = running_version
        self.policy = policy
        self.retry_delay_s = retry_delay_s
        self.background = background
        self.restart = threading.Event()  # the main loop stops and exits EXIT_RESTART
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        state = self.store.load()
        self.on_trial = state.phase is Phase.TRIAL and state.target == running_version
        self._trial_from_seq: int | None = None

    # ---- the command ---------------------------------------------------------------------------

    def offer(self, manifest_data: bytes) -> str:
        """The `update` command's answer: "pending", or "refused: <why>"."""
        try:
            manifest = verify(manifest_data, self.bridge_public_key)
        except ManifestError as exc:
            return f"refused: {exc}"[:64]
        t = self.store.apply(Offer(manifest, self.version, self.policy))
        if t.refused is not None:
            return f"refused: {t.refused.value}"
        log.info("update: %s offered (running %s); downloading", manifest.version, self.version)
        self._start(t.effects)
        return "pending"

    def resume(self) -> None:
        """After a restart: carry on with a download or an unpack a restart interrupted."""
        effects = resume(self.store.load())
        if effects:
            log.info("update: resuming (%s)", type(effects[0]).__name__)
            self._start(effects)

    # ---- the commit ----------------------------------------------------------------------------

    def watch_acks(self, next_seq: int, acked: int) -> None:
        """On trial: commit once the bridge acked a message this run numbered. `next_seq`: the
        outbox's next sequence number at this run's start (the first call remembers it)."""
        if not self.on_trial:
            return
        if self._trial_from_seq is None:
            self._trial_from_seq = next_seq
            return
        if acked >= self._trial_from_seq:
            t = self.store.apply(Acked(self.version))
            self.on_trial = False
            if t.state.phase is Phase.COMMITTED:
                log.info("update: %s committed (a report of it was acked)", self.version)

    # ---- the work ------------------------------------------------------------------------------

    def _start(self, effects: tuple[Effect, ...]) -> None:
        if not self.background:
            self._run(list(effects))
            return
        self._thread = threading.Thread(
            target=self._run, args=(list(effects),), name="update", daemon=True
        )
        self._thread.start()

    def shutdown(self) -> None:
        self._stop.set()

    def _run(self, todo: list[Effect]) -> None:
        try:
            while todo and not self._stop.is_set():
                todo = todo[1:] + list(self._do(todo[0]))
        except Exception:  # the update must never take the agent down
            log.exception("update: worker failed; the state on disk is where it stopped")

    def _do(self, effect: Effect) -> tuple[Effect, ...]:
        match effect:
            case Discard():
                release.discard(self.dir)
                return ()
            case Fetch(url, offset):
                state = self.store.load()
                if state.retries_left < self.policy.retries and offset == state.offset:
                    self._stop.wait(self.retry_delay_s)  # a retry: not at once
                result = fetch(
                    url,
                    release.download_path(self.dir),
                    offset,
                    state.size,
                    state.sha256,
                    self.store.apply,
                )
                return self.store.apply(result).effects
            case Unpack(version):
                try:
                    release.unpack(self.dir, version)
                except release.ReleaseError as exc:
                    log.warning("update: %s", exc)
                    return self.store.apply(UnpackFailed(str(exc))).effects
                release.discard(self.dir)
                return self.store.apply(Unpacked()).effects
            case Restart():
                log.info("update: switching to %s; restarting", self.store.load().target)
                self.restart.set()
                return ()
        return ()

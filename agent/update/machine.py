"""The self-update as a pure state machine: `step(state, event, policy)` returns the next state
and the effects the I/O shell carries out. Nothing here touches a file, a socket or a clock.

    idle/committed/rolled_back --Offer--> downloading --Downloaded(ok)--> staged
    staged --Unpacked--> trial (current -> target; restart) --Acked--> committed
    trial --Started beyond max_starts, or its trial time used up (Tick)--> rolled_back

The trial time is counted on the launcher's monotonic clock, only while the trial release
runs (Tick carries the milliseconds elapsed), never on the wall clock: a device without a
real-time clock may boot in 1970 and jump years when NTP or the bridge sets it (agent/
timebase.py), which would roll a good release back at once or keep a bad one for ever. Time
powered off does not count; each start does (max_starts), so a release that crashes or hangs
the machine before its first Tick still runs out.

The caller persists the new state (atomically) BEFORE it carries out the effects, and every
effect is idempotent, so a power cut anywhere replays from the last persisted state: a
download resumes at its persisted offset, an unpack is redone into a fresh directory, and the
`current` symlink is derived from the state alone (`expected_current`), so the launcher puts it
right before every start whatever step the cut interrupted.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from agent.update.manifest import Manifest, version_key

TRIAL_TIME_UP = "no acked report within the trial time"
BASE = ""
"""The release name of the base install (the venv systemd's unit points at): no symlink."""


class Phase(enum.StrEnum):
    IDLE = "idle"
    DOWNLOADING = "downloading"
    STAGED = "staged"
    TRIAL = "trial"  # switched: the target runs on probation until its report is acked
    COMMITTED = "committed"
    ROLLED_BACK = "rolled_back"


class Refusal(enum.StrEnum):
    """Why an offered manifest was not taken (the command's answer)."""

    SAME_VERSION = "same_version"
    DOWNGRADE = "downgrade"  # below the persisted minimum version
    BUSY = "busy"  # another update is under way


@dataclass(frozen=True)
class Policy:
    """From agent.toml's [update] section (the defaults live in agent.config's schema); kept in
    the state with the offer, so the launcher judges a trial by the rules it started under."""

    retries: int  # transient download failures (network, 5xx) before giving up
    max_starts: int  # starts of a trial release before it is rolled back
    trial_ms: int  # time a trial release has to get a report acked


@dataclass(frozen=True)
class UpdateState:
    phase: Phase = Phase.IDLE
    running: str = BASE  # the committed release
    floor: str = "0"  # the persisted minimum version: nothing older is installed
    target: str = ""
    sha256: str = ""  # hex
    url: str = ""
    size: int = 0
    min_version: str = "0"
    offset: int = 0  # bytes of the download persisted
    retries_left: int = 0
    max_starts: int = 0
    trial_ms: int = 0
    previous: str = BASE  # what ran before the switch (the rollback target)
    starts: int = 0  # starts of the trial release so far
    trial_left_ms: int = 0  # trial time left, counted only while the trial release runs
    reason: str = ""  # why the last update stopped (refused, failed, rolled back)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: object) -> UpdateState:
        if not isinstance(doc, dict):
            return cls()
        known = {f for f in cls.__dataclass_fields__}
        fields = {k: v for k, v in doc.items() if k in known}
        fields["phase"] = Phase(fields.get("phase", Phase.IDLE))
        if "deadline_ms" in doc and "trial_left_ms" not in doc:
            # a trial persisted with a wall-clock deadline: it gets its whole trial time again
            fields["trial_left_ms"] = fields.get("trial_ms", 0)
        return cls(**fields)


# ---- events ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    manifest: Manifest
    running_version: str  # the version of the process that got the command
    policy: Policy


@dataclass(frozen=True)
class Fetched:
    offset: int  # bytes now durably in the download file


@dataclass(frozen=True)
class FetchFailed:
    status: int  # the HTTP status; 0 for a network error or a timeout


@dataclass(frozen=True)
class Downloaded:
    digest_ok: bool  # the whole file's SHA-256 and size match the manifest


@dataclass(frozen=True)
class Unpacked:
    """releases/<target>/ is in place."""


@dataclass(frozen=True)
class UnpackFailed:
    why: str


@dataclass(frozen=True)
class Started:
    """The launcher is about to start `current`."""


@dataclass(frozen=True)
class Tick:
    elapsed_ms: int  # monotonic time the trial release ran since the launcher's last Tick


@dataclass(frozen=True)
class Acked:
    version: str  # a report the trial release made was acked by the bridge


Event = (
    Offer | Fetched | FetchFailed | Downloaded | Unpacked | UnpackFailed | Started | Tick | Acked
)


# ---- effects -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fetch:
    url: str
    offset: int


@dataclass(frozen=True)
class Unpack:
    version: str


@dataclass(frozen=True)
class Discard:
    """Remove the partial download (and a half-unpacked directory)."""


@dataclass(frozen=True)
class Restart:
    """Exit so that the launcher starts `current` (now the target)."""


Effect = Fetch | Unpack | Discard | Restart


@dataclass(frozen=True)
class Transition:
    state: UpdateState
    effects: tuple[Effect, ...] = ()
    refused: Refusal | None = None
    changed: bool = field(default=True)


def _same(state: UpdateState) -> Transition:
    return Transition(state, changed=False)


def expected_current(state: UpdateState) -> str:
    """The release `current` must name before a start: the target while on trial, else the
    committed one. Derived from the state alone, so a cut between a state write and the
    symlink switch is mended by the launcher."""
    return state.target if state.phase is Phase.TRIAL else state.running


def resume(state: UpdateState) -> tuple[Effect, ...]:
    """What the agent does again after a restart found the update half way."""
    if state.phase is Phase.DOWNLOADING:
        return (Fetch(state.url, state.offset),)
    if state.phase is Phase.STAGED:
        return (Unpack(state.target),)
    return ()


def _stop(state: UpdateState, reason: str) -> Transition:
    return Transition(
        replace(state, phase=Phase.IDLE, reason=reason, offset=0, retries_left=0), (Discard(),)
    )


def _rollback(state: UpdateState, reason: str) -> Transition:
    back = replace(state, phase=Phase.ROLLED_BACK, running=state.previous, reason=reason)
    return Transition(back)


def step(state: UpdateState, event: Event) -> Transition:
    phase = state.phase
    match event:
        case Offer(manifest, running_version, policy):
            if phase in (Phase.DOWNLOADING, Phase.STAGED, Phase.TRIAL):
                return Transition(state, refused=Refusal.BUSY, changed=False)
            running = state.running or running_version
            if manifest.version == running:
                return Transition(state, refused=Refusal.SAME_VERSION, changed=False)
            if version_key(manifest.version) < version_key(state.floor):
                return Transition(state, refused=Refusal.DOWNGRADE, changed=False)
            nxt = replace(
                state,
                phase=Phase.DOWNLOADING,
                running=running,
                target=manifest.version,
                sha256=manifest.sha256.hex(),
                url=manifest.url,
                size=manifest.size,
                min_version=manifest.min_version,
                offset=0,
                retries_left=policy.retries,
                max_starts=policy.max_starts,
                trial_ms=policy.trial_ms,
                starts=0,
                trial_left_ms=0,
                reason="",
            )
            return Transition(nxt, (Discard(), Fetch(manifest.url, 0)))
        case Fetched(offset) if phase is Phase.DOWNLOADING:
            return Transition(replace(state, offset=offset))
        case FetchFailed(status) if phase is Phase.DOWNLOADING:
            if 400 <= status < 500:
                return _stop(state, f"http {status}")
            left = state.retries_left - 1
            if left <= 0:
                return _stop(state, f"retries exhausted (last: {status or 'network'})")
            return Transition(replace(state, retries_left=left), (Fetch(state.url, state.offset),))
        case Downloaded(digest_ok) if phase is Phase.DOWNLOADING:
            if not digest_ok:
                return _stop(state, "sha256 mismatch")
            return Transition(replace(state, phase=Phase.STAGED), (Unpack(state.target),))
        case Unpacked() if phase is Phase.STAGED:
            nxt = replace(
                state,
                phase=Phase.TRIAL,
                previous=state.running,
                starts=0,
                trial_left_ms=state.trial_ms,
            )
            return Transition(nxt, (Restart(),))
        case UnpackFailed(why) if phase is Phase.STAGED:
            return _stop(state, f"unpack failed: {why}"[:120])
        case Started() if phase is Phase.TRIAL:
            if state.trial_left_ms <= 0:
                return _rollback(state, TRIAL_TIME_UP)
            if state.starts >= state.max_starts:
                return _rollback(state, f"{state.starts} failed starts")
            return Transition(replace(state, starts=state.starts + 1))
        case Tick(elapsed_ms) if phase is Phase.TRIAL:
            left = state.trial_left_ms - max(elapsed_ms, 0)
            if left <= 0:
                return _rollback(replace(state, trial_left_ms=0), TRIAL_TIME_UP)
            return Transition(replace(state, trial_left_ms=left))
        case Acked(version) if phase is Phase.TRIAL and version == state.target:
            floor = max(state.floor, state.min_version, key=version_key)
            return Transition(
                replace(state, phase=Phase.COMMITTED, running=state.target, floor=floor)
            )
    return _same(state)

"""The self-update state machine (agent.update.machine), pure: every transition and refusal,
with refusals leaving the state unchanged."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import nacl.signing
import pytest

from agent.update.machine import (
    TRIAL_TIME_UP,
    Acked,
    Discard,
    Downloaded,
    Fetch,
    Fetched,
    FetchFailed,
    Offer,
    Phase,
    Policy,
    Refusal,
    Restart,
    Started,
    Tick,
    Unpack,
    Unpacked,
    UnpackFailed,
    UpdateState,
    expected_current,
    resume,
    step,
)
from agent.update.manifest import Manifest, ManifestError, verify, version_key

POLICY = Policy(retries=3, max_starts=2, trial_ms=1000)
DIGEST = hashlib.sha256(b"release").digest()


def manifest(version: str = "1.1.0", min_version: str = "0") -> Manifest:
    return Manifest(version, DIGEST, "http://h/r.tgz", 7, min_version)


def offered(version: str = "1.1.0", min_version: str = "0") -> UpdateState:
    return step(UpdateState(), Offer(manifest(version, min_version), "1.0.0", POLICY)).state


def on_trial() -> UpdateState:
    s = step(offered(), Downloaded(True)).state
    return step(s, Unpacked()).state


def test_offer_starts_a_download_from_zero() -> None:
    t = step(UpdateState(), Offer(manifest(), "1.0.0", POLICY))
    assert t.state.phase is Phase.DOWNLOADING and t.refused is None
    assert t.state.running == "1.0.0" and t.state.target == "1.1.0"
    assert t.state.retries_left == 3 and t.state.sha256 == DIGEST.hex()
    assert t.effects == (Discard(), Fetch("http://h/r.tgz", 0))


@pytest.mark.parametrize(
    ("state", "version", "refusal"),
    [
        (UpdateState(), "1.0.0", Refusal.SAME_VERSION),
        (UpdateState(floor="1.2"), "1.1.9", Refusal.DOWNGRADE),
        (UpdateState(phase=Phase.DOWNLOADING, target="2.0"), "2.1", Refusal.BUSY),
        (UpdateState(phase=Phase.TRIAL, target="2.0"), "2.1", Refusal.BUSY),
    ],
)
def test_refused_offers_change_nothing(state: UpdateState, version: str, refusal: Refusal) -> None:
    t = step(state, Offer(manifest(version), "1.0.0", POLICY))
    assert t.refused is refusal and t.state == state and not t.changed and t.effects == ()


def test_download_progress_failures_and_budget() -> None:
    s = step(offered(), Fetched(4)).state
    assert s.offset == 4
    t = step(s, FetchFailed(503))
    assert t.state.retries_left == 2 and t.effects == (Fetch("http://h/r.tgz", 4),)  # resume
    t = step(t.state, FetchFailed(0))
    t = step(t.state, FetchFailed(0))
    assert t.state.phase is Phase.IDLE and "retries exhausted" in t.state.reason
    assert t.effects == (Discard(),)


def test_a_client_error_stops_at_once() -> None:
    t = step(offered(), FetchFailed(404))
    assert t.state.phase is Phase.IDLE and t.state.reason == "http 404"
    assert t.effects == (Discard(),)


def test_a_bad_digest_stops_and_a_good_one_unpacks_then_switches() -> None:
    assert step(offered(), Downloaded(False)).state.reason == "sha256 mismatch"
    t = step(offered(), Downloaded(True))
    assert t.state.phase is Phase.STAGED and t.effects == (Unpack("1.1.0"),)
    assert expected_current(t.state) == "1.0.0"  # not switched yet
    bad = step(t.state, UnpackFailed("truncated"))
    assert bad.state.phase is Phase.IDLE and bad.state.reason == "unpack failed: truncated"
    t = step(t.state, Unpacked())
    assert t.state.phase is Phase.TRIAL and t.effects == (Restart(),)
    assert t.state.previous == "1.0.0" and t.state.trial_left_ms == 1000
    assert expected_current(t.state) == "1.1.0"


def test_trial_commits_on_its_own_ack_and_raises_the_floor() -> None:
    s = replace(on_trial(), min_version="1.1")
    assert not step(s, Acked("1.0.0")).changed  # an ack for the old version commits nothing
    t = step(s, Acked("1.1.0"))
    assert t.state.phase is Phase.COMMITTED and t.state.running == "1.1.0"
    assert t.state.floor == "1.1" and expected_current(t.state) == "1.1.0"
    again = step(t.state, Offer(manifest("1.0.5"), "1.1.0", POLICY))
    assert again.refused is Refusal.DOWNGRADE


def test_trial_rolls_back_after_max_starts() -> None:
    s = on_trial()
    s = step(s, Started()).state
    s = step(s, Started()).state
    assert s.phase is Phase.TRIAL and s.starts == 2
    t = step(s, Started())
    assert t.state.phase is Phase.ROLLED_BACK and t.state.running == "1.0.0"
    assert t.state.reason == "2 failed starts" and expected_current(t.state) == "1.0.0"


def test_trial_rolls_back_when_its_running_time_is_used_up_whether_started_or_ticking() -> None:
    s = step(on_trial(), Started()).state
    s = step(s, Tick(600)).state
    assert s.phase is Phase.TRIAL and s.trial_left_ms == 400
    assert step(s, Tick(399)).state.trial_left_ms == 1
    used_up = step(s, Tick(400)).state
    assert used_up.phase is Phase.ROLLED_BACK and used_up.reason == TRIAL_TIME_UP
    assert step(replace(s, trial_left_ms=0), Started()).state.phase is Phase.ROLLED_BACK
    assert step(s, Tick(-5)).state == s  # a clock read twice out of order uses nothing up


def test_the_trial_time_ignores_the_wall_clock() -> None:
    # No event carries wall time: however the clock jumps (a board booting in 1970 that NTP
    # sets to today, or back), only the time the release ran counts. Power cuts between starts
    # use up starts, not time.
    s = on_trial()
    for _ in range(POLICY.max_starts):
        s = step(s, Started()).state
        assert s.phase is Phase.TRIAL and s.trial_left_ms == POLICY.trial_ms


def test_a_trial_persisted_with_a_wall_clock_deadline_gets_its_whole_time() -> None:
    old = {"phase": "trial", "target": "1.1.0", "trial_ms": 1000, "deadline_ms": 1_700_000_000_000}
    assert UpdateState.from_json(old).trial_left_ms == 1000


def test_starts_outside_a_trial_count_nothing() -> None:
    for s in (UpdateState(), offered(), replace(on_trial(), phase=Phase.COMMITTED)):
        assert not step(s, Started()).changed


def test_resume_after_a_restart() -> None:
    s = step(offered(), Fetched(5)).state
    assert resume(s) == (Fetch("http://h/r.tgz", 5),)
    assert resume(step(s, Downloaded(True)).state) == (Unpack("1.1.0"),)
    assert resume(on_trial()) == () and resume(UpdateState()) == ()


def test_state_round_trips_through_json() -> None:
    s = step(on_trial(), Tick(7)).state  # a trial part used up survives the round trip
    assert UpdateState.from_json(s.to_json()) == s
    assert UpdateState.from_json(None) == UpdateState()


def test_manifest_signature_and_fields() -> None:
    key = nacl.signing.SigningKey(bytes(range(32)))
    data = manifest("2.0.1", "2.0").sign(key)
    assert verify(data, bytes(key.verify_key)) == manifest("2.0.1", "2.0")
    other = nacl.signing.SigningKey(bytes(range(1, 33)))
    with pytest.raises(ManifestError, match="signature"):
        verify(data, bytes(other.verify_key))
    with pytest.raises(ManifestError, match="below its own min_version"):
        manifest("1.0", "1.1")
    with pytest.raises(ManifestError, match="version"):
        manifest("1.x")
    assert version_key("1.2.10") > version_key("1.2.9") > version_key("1.2")

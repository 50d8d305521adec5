"""The self-update state machine (agent.update.machine), pure: every transition and refusal,
with refusals leaving the state unchanged."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import nacl.signing
import pytest

from agent.update.machine import (
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
from protocol import cbor

POLICY = Policy(retries=3, max_starts=2, trial_ms=1000)
DIGEST = hashlib.sha256(b"release").digest()


def manifest(version: str = "1.1.0", min_version: str = "0") -> Manifest:
    return Manifest(version, DIGEST, "http://h/r.tgz", 7, min_version)


def offered(version: str = "1.1.0", min_version: str = "0") -> UpdateState:
    return step(UpdateState(), Offer(manifest(version, min_version), "1.0.0", POLICY)).state


def on_trial(now_ms: int = 0) -> UpdateState:
    s = step(offered(), Downloaded(True)).state
    return step(s, Unpacked(now_ms)).state


def test_offer_starts_a_download_from_zero() -> None:
    t = step(UpdateState(), Offer(manifest(), "1.0.0", POLICY))
    assert t.state.phase is Phase.DOWNLOADING and t.refused is None
    assert t.state.running == "1.0.0" and t.state.target == "1.1.0"
    assert t.state.retries_left == 3 and t.state.sha256 == DIGEST.hex()
    assert t.effects == (Discard(), Fetch("http://h/r.tgz", 0))


def test_a_release_for_another_target_is_refused() -> None:
    esp32 = Manifest("1.1.0", DIGEST, "http://h/fw.bin", 7, "0", "esp32")
    t = step(UpdateState(), Offer(esp32, "1.0.0", POLICY))
    assert t.refused is Refusal.WRONG_TARGET and not t.changed and t.effects == ()


def test_the_target_is_signed_and_required() -> None:
    key = nacl.signing.SigningKey(bytes(range(32)))
    esp32 = Manifest("1.1.0", DIGEST, "http://h/fw.bin", 7, "0", "esp32")
    assert verify(esp32.sign(key), bytes(key.verify_key)).target == "esp32"
    with pytest.raises(ManifestError, match="target 'pc' must be one of esp32, linux-agent"):
        Manifest("1.1.0", DIGEST, "http://h/r.tgz", 7, "0", "pc")
    with pytest.raises(ManifestError, match="esp32 image is downloaded over http://"):
        Manifest("1.1.0", DIGEST, "https://h/fw.bin", 7, "0", "esp32")
    untargeted = {1: "1.1.0", 2: DIGEST, 3: "http://h/r.tgz", 4: "0", 5: 7}
    with pytest.raises(ManifestError, match="lacks key 6"):
        Manifest.decode(cbor.dumps(untargeted))


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
    t = step(t.state, Unpacked(500))
    assert t.state.phase is Phase.TRIAL and t.effects == (Restart(),)
    assert t.state.previous == "1.0.0" and t.state.deadline_ms == 1500
    assert expected_current(t.state) == "1.1.0"


def test_trial_commits_on_its_own_ack_and_raises_the_floor() -> None:
    s = replace(on_trial(), min_version="1.1")
    assert not step(s, Acked("1.0.0")).changed  # an ack for the old version commits nothing
    t = step(s, Acked("1.1.0"))
    assert t.state.phase is Phase.COMMITTED and t.state.running == "1.1.0"
    assert t.state.floor == "1.1" and expected_current(t.state) == "1.1.0"
    again = step(t.state, Offer(manifest("1.0.5"), "1.1.0", POLICY))
    assert again.refused is Refusal.DOWNGRADE


def test_a_commit_without_min_version_still_refuses_older_releases() -> None:
    s = on_trial()  # min_version "0": the manifest's default
    t = step(s, Acked("1.1.0"))
    assert t.state.floor == "1.1.0"
    assert step(t.state, Offer(manifest("1.0.9"), "1.1.0", POLICY)).refused is Refusal.DOWNGRADE
    assert step(t.state, Offer(manifest("1.2.0"), "1.1.0", POLICY)).refused is None


def test_trial_rolls_back_after_max_starts() -> None:
    s = on_trial()
    s = step(s, Started(10)).state
    s = step(s, Started(20)).state
    assert s.phase is Phase.TRIAL and s.starts == 2
    t = step(s, Started(30))
    assert t.state.phase is Phase.ROLLED_BACK and t.state.running == "1.0.0"
    assert t.state.reason == "2 failed starts" and expected_current(t.state) == "1.0.0"


def test_a_new_boot_rearms_the_trial_deadline_on_its_own_clock() -> None:
    s = step(step(offered(), Downloaded(True)).state, Unpacked(5_000, "boot-a")).state
    assert s.deadline_ms == 6_000 and s.deadline_boot == "boot-a"
    # a power cut: CLOCK_BOOTTIME starts again near 0 in boot-b; the trial gets trial_ms again
    t = step(s, Started(200, "boot-b"))
    assert t.state.phase is Phase.TRIAL and t.state.starts == 1
    assert (t.state.deadline_ms, t.state.deadline_boot) == (1_200, "boot-b")
    assert not step(t.state, Tick(1_200, "boot-b")).changed
    assert step(t.state, Tick(1_201, "boot-b")).state.phase is Phase.ROLLED_BACK
    # a Tick seen first in another boot re-arms too (never judged across boots)
    assert step(s, Tick(10, "boot-c")).state.deadline_ms == 1_010


def test_trial_rolls_back_at_the_deadline_whether_started_or_ticking() -> None:
    s = step(on_trial(0), Started(10)).state
    assert not step(s, Tick(1000)).changed
    assert step(s, Tick(1001)).state.phase is Phase.ROLLED_BACK
    assert step(s, Started(1001)).state.phase is Phase.ROLLED_BACK


def test_starts_outside_a_trial_count_nothing() -> None:
    for s in (UpdateState(), offered(), replace(on_trial(), phase=Phase.COMMITTED)):
        assert not step(s, Started(10**12)).changed


def test_resume_after_a_restart() -> None:
    s = step(offered(), Fetched(5)).state
    assert resume(s) == (Fetch("http://h/r.tgz", 5),)
    assert resume(step(s, Downloaded(True)).state) == (Unpack("1.1.0"),)
    assert resume(on_trial()) == () and resume(UpdateState()) == ()


def test_state_round_trips_through_json() -> None:
    s = on_trial(7)
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

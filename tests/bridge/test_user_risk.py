"""Per-user risk through the ingest on a real store (issue 13 item 6): a user's phone and watch
each report where they are; the bridge judges each located report against the user's last
located event from either device, keeps that per user across batches (migration
011_user_risk), and publishes the reason. GeoIP noise of 25-500 km is no alarm. Distances as
in tests/risk/test_user_signals.py (1 degree of latitude: 111.2 km)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nacl.signing
import pytest

from agent.simulator.cohort import device_sessions
from cloud_bridge.config import BridgeConfig, load
from cloud_bridge.ingest import Ingest
from cloud_bridge.pool.commands import OpenPool
from cloud_bridge.pool.service import PoolService
from cloud_bridge.publish import Publisher
from cloud_bridge.registry import Registry
from cloud_bridge.store import ingest_repo, open_store
from protocol import envelope
from protocol import messages as m
from tests.bridge.test_stepup import BRIDGE_KEY, FLEET, T0, Rig, decisions, genuine, q_of
from tests.risk.test_user_signals import LAT, LON, MIN, north


@pytest.fixture
def rig(tmp_path: Path, store_url: str) -> Iterator[Rig]:
    (tmp_path / "bridge.toml").write_text("")  # calibrated thresholds: genuine reports allowed
    cfg: BridgeConfig = load(tmp_path / "bridge.toml", tmp_path)
    cfg = BridgeConfig(**{**cfg.__dict__, "fleet": FLEET, "store_url": store_url})
    clock = [T0]
    with open_store(store_url) as store:
        registry = Registry()
        service = PoolService(store)
        ingest = Ingest(store, registry, Publisher("bridge-1", BRIDGE_KEY, store), service, cfg,
                        wall_ms=lambda: clock[0])  # fmt: skip
        keys, sessions = {}, {}
        for n, (device, kind, seed) in enumerate(
            (("u1-phone", "phone", 1_960_011), ("u1-watch", "wearable", 1_960_012))
        ):
            key = nacl.signing.SigningKey(bytes([n + 7]) * 32)
            ss = device_sessions(seed, kind, genuine=10, per_impostor=2)
            record = m.Enrollment(
                sender=device, seq=1, boot=0, ts_ms=1, fleet=FLEET, device_kind=kind,
                public_key=bytes(key.verify_key), baseline=ss[0].baseline.to_wire(),
            )  # fmt: skip
            with store.transaction() as tx:
                registry.enroll(tx, envelope.seal(record, key), "u1", 1, fleet=FLEET)
            keys[device], sessions[device] = key, ss
        service.execute(OpenPool(user="u1", key="open-u1", limit_fen=5_000_000))
        yield Rig(store, ingest, clock, keys, sessions, {d: 0 for d in keys})


def located(rig: Rig, device: str, lat_e7: int, accuracy_m: int, source: str) -> m.Decision:
    """A genuine, allowed-scoring report of `device` at `lat_e7` now; its decision."""
    where = m.Location(lat_e7=lat_e7, lon_e7=LON, accuracy_m=accuracy_m, source=source)
    # a fresh genuine session each time (one sent twice is fingerprint_replay)
    sessions = [x for x in rig.sessions[device] if not x.impostor and q_of(x) < -40]
    session = sessions[rig.seqs[device]]
    (decision,) = decisions(rig.send(device, rig.report(device, session, location=where)))
    return decision


def test_impossible_travel_across_a_users_devices_is_held_and_remembered(rig: Rig) -> None:
    first = located(rig, "u1-phone", LAT, 10, "gps")
    assert (first.decision, first.reasons) == ("allow", ())
    rig.clock[0] += 10 * MIN
    far = located(rig, "u1-watch", north(1000), 10, "gps")  # the other device, 1,000 km away
    assert far.decision == "hold" and "impossible_travel" in far.reasons
    # The user's memory is stored: the phone, back at home 10 minutes later (another batch),
    # is judged against the watch's fix, not against its own.
    with rig.store.transaction() as tx:
        (mem,) = ingest_repo.lock_users(tx, {"u1"}).values()
    assert mem.travel.last is not None and mem.travel.last.device == "u1-watch"
    rig.clock[0] += 10 * MIN
    again = located(rig, "u1-phone", LAT, 10, "gps")
    assert again.decision == "hold" and "impossible_travel" in again.reasons


@pytest.mark.parametrize("off_km", [25, 150, 500])
def test_geoip_noise_across_a_users_devices_is_no_alarm(rig: Rig, off_km: int) -> None:
    assert located(rig, "u1-phone", LAT, 10, "gps").decision == "allow"
    rig.clock[0] += 10 * MIN
    noisy = located(rig, "u1-watch", north(off_km), 50_000, "ip")
    assert (noisy.decision, noisy.reasons) == ("allow", ())
    rig.clock[0] += 10 * MIN
    assert located(rig, "u1-phone", LAT, 10, "gps").reasons == ()


def test_reports_without_a_location_read_and_write_no_user_row(rig: Rig) -> None:
    session = genuine(rig, "u1-phone", -60)
    (d,) = decisions(rig.send("u1-phone", rig.report("u1-phone", session)))
    assert d.decision == "allow"
    with rig.store.transaction() as tx:
        assert ingest_repo.lock_users(tx, {"u1"}) == {}

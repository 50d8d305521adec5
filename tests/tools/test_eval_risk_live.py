"""tools.eval_risk.live: a bridge's logged reports rescored as the bridge does, measured per kind,
and a calibration file written from them that the bridge can load."""

from __future__ import annotations

import json
from pathlib import Path

import nacl.signing
import pytest

from agent.config import REPO_MODEL
from agent.features import model_input
from agent.scoring import Scorer
from agent.simulator.cohort import device_sessions
from cloud_bridge.config import BridgeConfig
from cloud_bridge.ingest import Inbound, Ingest
from cloud_bridge.pool.service import PoolService
from cloud_bridge.publish import Publisher
from cloud_bridge.registry import Registry
from cloud_bridge.risk import calibration
from cloud_bridge.store import open_store
from protocol import envelope, topics
from protocol import messages as m
from protocol.topics import Channel
from tools.eval_risk import live

SCORER = Scorer.load(REPO_MODEL)
FLEET = "f"


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Two phones, each with 8 honest genuine reports; the second also sends one report that
    says risk_pm 0 for a session the model scores at 10."""
    url = str(tmp_path_factory.mktemp("live") / "bridge.sqlite3")
    with open_store(url) as store:
        registry = Registry()
        cfg = BridgeConfig(path=None, data_dir=Path("."), fleet=FLEET, store_url=url)
        ingest = Ingest(
            store, registry, Publisher("bridge-1", nacl.signing.SigningKey(bytes(32)), store),
            PoolService(store), cfg,
        )  # fmt: skip
        for n, seed in enumerate((1_960_001, 1_960_002)):
            device = f"phone-{n}"
            key = nacl.signing.SigningKey(bytes([n + 1]) * 32)
            sessions = device_sessions(seed, "phone", genuine=8, per_impostor=0)
            record = m.Enrollment(
                sender=device, seq=1, boot=0, ts_ms=1, fleet=FLEET, device_kind="phone",
                public_key=bytes(key.verify_key), baseline=sessions[0].baseline.to_wire(),
            )  # fmt: skip
            with store.transaction() as tx:
                registry.enroll(tx, envelope.seal(record, key), f"u{n}", 1, fleet=FLEET)
            batch = []
            for seq, s in enumerate(sessions, 1):
                score = SCORER.score(model_input(s.current, s.baseline, SCORER.normalisation))
                lie = n == 1 and seq == 8  # the model says 10 per-mille; the report says 0
                report = m.Report(
                    sender=device, seq=seq, boot=1, ts_ms=1, model_id=SCORER.model_id,
                    model_sha256=SCORER.model_sha256, risk_pm=0 if lie else score.risk_pm,
                    features=score.input_q, fingerprint=s.current.to_wire(), mono_ms=1,
                )  # fmt: skip
                topic = topics.device(FLEET, device, Channel.REPORT)
                batch.append(Inbound(topic, envelope.seal(report, key), 1))
            assert ingest.process(batch).accepted == 8
    return url


def test_measure__every_logged_report_rescored(db: str) -> None:
    logged, baselines = live.read(db)
    assert len(logged) == 16 and set(baselines) == {"phone-0", "phone-1"}
    thresholds = dict(calibration.load(REPO_MODEL.with_suffix(".calibration.json")).kinds)
    result, genuine = live.measure(logged, baselines, SCORER, thresholds)
    assert result["reports"] == 16 and result["devices"] == 2
    assert len(genuine["phone"]) == 16
    assert result["per_kind"]["phone"]["reports"] == 16
    assert result["tamper"] == {"score_mismatch": 1}
    assert result["met"] is False  # a genuine fleet must show no tamper
    # every cross-device pairing was scored (8 reports of the other phone per baseline)
    assert result["cross_device_detection"] is not None


def test_main__writes_a_calibration_the_bridge_loads(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "live.calibration.json"
    live.main(["--db", db, "--write", str(out)])
    printed = json.loads(capsys.readouterr().out)
    cal = calibration.load(out)
    assert cal.model_sha256 == SCORER.model_sha256.hex()
    assert set(cal.kinds) == {"phone"}
    assert cal.source["reports"] == printed["reports"] == 16
    # The bridge's whole decision replayed: every report judged, the tampered one held (its
    # score_mismatch is the [risk] mismatch level), so the fleet does not meet the goal.
    decision = printed["decision"]
    assert decision["per_kind"]["phone"]["reports"] == 16
    assert decision["per_kind"]["phone"]["hold_rate"] >= 1 / 16
    assert printed["met"] is False and printed["score_only"]["met"] is False
    # 16 scores, rates 0.8 % and 0.05 %: none may be flagged, so both sit above the highest
    logged, baselines = live.read(db)
    _, genuine = live.measure(logged, baselines, SCORER, {})
    assert cal.kinds["phone"].step_up_q == cal.kinds["phone"].hold_q == max(genuine["phone"]) + 1

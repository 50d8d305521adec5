"""The bridge's own score (cloud_bridge.risk.server_score) on simulated sessions through the real
TFLite model: a device's forged risk_pm or model input is caught and never decides."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from agent.features import Fingerprint, enroll, extract
from agent.scoring import Scorer
from agent.simulator.device import SimDevice
from agent.simulator.impostors import impostor
from cloud_bridge.risk.server_score import ServerScorer, Tamper

MODEL = Path(__file__).resolve().parents[2] / "models" / "risk-v1.tflite"


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer.load(MODEL)


@pytest.fixture(scope="module")
def server(scorer: Scorer) -> ServerScorer:
    return ServerScorer([scorer])


def _device(kind: str = "phone", seed: int = 2_950_001) -> tuple[SimDevice, dict[int, int]]:
    d = SimDevice(seed, kind)
    return d, enroll([extract(c) for c in d.enrollment(6)]).to_wire()


def test_an_honest_report_has_no_tamper_and_the_same_score(
    scorer: Scorer, server: ServerScorer
) -> None:
    d, baseline = _device()
    for session in range(10):
        fp = extract(d.capture(session))
        dev = scorer.score_fingerprint(fp, _fp(baseline))
        got = server.score(
            scorer.model_id, scorer.model_sha256, fp.to_wire(), dev.input_q, dev.risk_pm, baseline
        )
        assert got.tamper == ()
        assert got.output_q == dev.output_q


def _fp(wire: dict[int, int]) -> Fingerprint:
    return Fingerprint.from_wire(wire)


def test_a_zero_score_for_an_impostor_is_caught(scorer: Scorer, server: ServerScorer) -> None:
    """The compromised board's lie: impostor sessions reported with risk_pm 0."""
    d, baseline = _device()
    lies = 0
    for attack in range(10):
        fp = extract(impostor("copied_key", d, 100 + attack, attack))
        honest = scorer.score_fingerprint(fp, _fp(baseline))
        got = server.score(
            scorer.model_id, scorer.model_sha256, fp.to_wire(), honest.input_q, 0, baseline
        )
        assert got.risk_pm == honest.risk_pm  # the decision sees the real score, not the 0
        lie = scorer.risk_pm_from_q(max(-128, honest.output_q - 1)) > 0
        assert (Tamper.SCORE_MISMATCH in got.tamper) == lie
        lies += lie
    assert lies >= 8  # copied keys score high: almost every one is a visible lie


def test_a_benign_model_input_for_an_impostor_is_caught(
    scorer: Scorer, server: ServerScorer
) -> None:
    """A board that also sends the model input of an earlier genuine session."""
    d, baseline = _device()
    genuine = scorer.score_fingerprint(extract(d.capture(1)), _fp(baseline))
    fp = extract(impostor("copied_key", d, 200, 1))
    got = server.score(
        scorer.model_id,
        scorer.model_sha256,
        fp.to_wire(),
        genuine.input_q,
        genuine.risk_pm,
        baseline,
    )
    assert Tamper.FEATURES_MISMATCH in got.tamper
    assert Tamper.SCORE_MISMATCH not in got.tamper  # the pair is consistent; the input is not
    assert got.output_q == scorer.score_fingerprint(fp, _fp(baseline)).output_q


def test_one_step_of_rounding_is_not_tamper(scorer: Scorer, server: ServerScorer) -> None:
    d, baseline = _device()
    fp = extract(d.capture(3))
    honest = scorer.score_fingerprint(fp, _fp(baseline))
    nudged = bytearray(honest.input_q)
    nudged[0] = (nudged[0] + 1) % 256 if nudged[0] != 127 else 126
    claimed = scorer.risk_pm_from_q(scorer.score_q(bytes(nudged)))
    got = server.score(
        scorer.model_id, scorer.model_sha256, fp.to_wire(), bytes(nudged), claimed, baseline
    )
    assert got.tamper == ()


def test_unknown_model_and_bad_fingerprint(scorer: Scorer, server: ServerScorer) -> None:
    d, baseline = _device()
    fp = extract(d.capture(1)).to_wire()
    got = server.score(scorer.model_id, b"\x00" * 32, fp, b"\x00" * 20, 0, baseline)
    assert (got.output_q, got.tamper) == (None, (Tamper.UNKNOWN_MODEL,))
    del fp[0]
    got = server.score(scorer.model_id, scorer.model_sha256, fp, b"\x00" * 20, 0, baseline)
    assert (got.output_q, got.tamper) == (None, (Tamper.BAD_FINGERPRINT,))
    assert server.score(scorer.model_id, scorer.model_sha256, {}, b"", 0, baseline).tamper == (
        Tamper.BAD_FINGERPRINT,
    )


def test_a_prefix_of_the_sha256_names_the_model_with_its_id(
    scorer: Scorer, server: ServerScorer
) -> None:
    """ESP32 boards send the model's SHA-256 cut to 8 bytes (protocol MODEL_SHA256_PREFIX):
    the same score as with all 32 bytes, as long as the model_id agrees too."""
    d, baseline = _device()
    fp = extract(d.capture(2))
    dev = scorer.score_fingerprint(fp, _fp(baseline))
    whole = server.score(
        scorer.model_id, scorer.model_sha256, fp.to_wire(), dev.input_q, dev.risk_pm, baseline
    )
    cut = server.score(
        scorer.model_id, scorer.model_sha256[:8], fp.to_wire(), dev.input_q, dev.risk_pm, baseline
    )
    assert cut == whole and cut.tamper == ()
    wrong_id = server.score(
        "other-v9", scorer.model_sha256[:8], fp.to_wire(), dev.input_q, dev.risk_pm, baseline
    )
    assert wrong_id.tamper == (Tamper.UNKNOWN_MODEL,)
    other = bytes([scorer.model_sha256[0] ^ 1]) + scorer.model_sha256[1:8]
    assert server.score(
        scorer.model_id, other, fp.to_wire(), dev.input_q, dev.risk_pm, baseline
    ).tamper == (Tamper.UNKNOWN_MODEL,)
    # a whole SHA-256 names the model alone, whatever the id says (as before the prefix)
    assert (
        server.score(
            "other-v9", scorer.model_sha256, fp.to_wire(), dev.input_q, dev.risk_pm, baseline
        )
        == whole
    )


def test_the_device_input_is_judged_whether_or_not_it_is_the_bridges(
    scorer: Scorer, server: ServerScorer
) -> None:
    """The score of the device's own input is the model's on it: taken from the bridge's run
    when the inputs are equal, run again when they differ by a rounding step."""
    d, baseline = _device(seed=2_950_007)
    fp = extract(d.capture(3))
    dev = scorer.score_fingerprint(fp, _fp(baseline))
    same = server.score(
        scorer.model_id, scorer.model_sha256, fp.to_wire(), dev.input_q, dev.risk_pm, baseline
    )
    assert same.tamper == () and same.output_q == dev.output_q
    first = dev.input_q[0]
    step = -1 if first == 0x7F else 1  # one int8 step on one element, never wrapping around
    nudged = bytes([(first + step) % 256]) + dev.input_q[1:]
    claimed = scorer.risk_pm_from_q(scorer.score_q(nudged))
    other = server.score(
        scorer.model_id, scorer.model_sha256, fp.to_wire(), nudged, claimed, baseline
    )
    assert other.tamper == ()  # within a rounding step, and the score is the model's on it
    wrong = server.score(scorer.model_id, scorer.model_sha256, fp.to_wire(), nudged, 1000, baseline)
    assert claimed != 1000 and Tamper.SCORE_MISMATCH in wrong.tamper


def test_two_models_sharing_an_id_and_a_prefix_are_refused_at_load(scorer: Scorer) -> None:
    """A report's short form (id + 8 bytes) must name one model: two loaded models that share
    both would let the first loaded win silently, so the bridge refuses to start with them."""
    twin = copy.copy(scorer)
    twin.model_sha256 = scorer.model_sha256[:8] + bytes(24)  # same prefix, another file
    with pytest.raises(ValueError, match="share the id"):
        ServerScorer([scorer, twin])
    renamed = copy.copy(twin)
    renamed.model_id = "risk-v2"  # another id: the short forms differ, both load
    both = ServerScorer([scorer, renamed])
    assert both.find("risk-v2", scorer.model_sha256[:8]) is renamed
    assert both.find(scorer.model_id, scorer.model_sha256[:8]) is scorer

"""tflite-runtime, tflite-micro and firmware/lib/scorer.py agree exactly on the committed model."""

from __future__ import annotations

import json
from types import ModuleType

import numpy as np
import pytest
from tflite_micro.python.tflite_micro import runtime as micro

from agent.scoring import Scorer
from tests.model.conftest import FIRMWARE_LIB, MODEL
from tools import model_card

N_RANDOM = 1000


@pytest.fixture(scope="module")
def inputs(scorer: Scorer) -> np.ndarray:
    rng = np.random.default_rng(20261128)
    random = rng.integers(-128, 128, (N_RANDOM, scorer.n_inputs), dtype=np.int8)
    edges = np.array([[-128] * scorer.n_inputs, [127] * scorer.n_inputs, [0] * scorer.n_inputs])
    return np.concatenate([random, edges.astype(np.int8)])


def test_three_runtimes_agree_on_random_int8_inputs(
    scorer: Scorer, firmware_scorer: ModuleType, inputs: np.ndarray
) -> None:
    tflm = micro.Interpreter.from_bytes(MODEL.read_bytes())
    lite, tiny, board = [], [], []
    for row in inputs:
        lite.append(scorer.score_q(row.tobytes()))
        tflm.set_input(row[None, :], 0)
        tflm.invoke()
        tiny.append(int(tflm.get_output(0)[0, 0]))
        board.append(np.frombuffer(firmware_scorer.infer(row.tobytes()), np.int8)[0])
    assert lite == tiny
    assert lite == [int(v) for v in board]
    # and the inputs exercise the output range, not one saturated value
    assert len(set(lite)) > 20


def test_risk_pm_is_the_same_number_on_the_board(
    scorer: Scorer, firmware_scorer: ModuleType
) -> None:
    for q in range(-128, 128):
        assert firmware_scorer.risk_pm(q) == scorer.risk_pm_from_q(q)
    assert scorer.risk_pm_from_q(-128) <= 5 and scorer.risk_pm_from_q(127) >= 995


def test_committed_model_card_is_generated_from_the_committed_model() -> None:
    meta = json.loads(MODEL.with_suffix(".json").read_text())
    expected = model_card.render(MODEL.read_bytes(), meta)
    assert (FIRMWARE_LIB / "model_card.py").read_text() == expected


def test_quantize_multiplier_matches_tflite() -> None:
    # values checked by hand against QuantizeMultiplier: 0.5 -> (2**30, 0), 1.0 -> (2**30, 1)
    assert model_card.quantize_multiplier(0.5) == (1 << 30, 0)
    assert model_card.quantize_multiplier(1.0) == (1 << 30, 1)
    assert model_card.quantize_multiplier(0.75) == (3 << 29, 0)
    assert model_card.quantize_multiplier(0.0) == (0, 0)


def test_firmware_rounding_helpers(firmware_scorer: ModuleType) -> None:
    mbqm = firmware_scorer.multiply_by_quantized_multiplier
    assert mbqm(100, 1 << 30, 0) == 50  # x * 0.5
    # the doubling high multiply rounds half up (-1.5 -> -1, 1.5 -> 2) ...
    assert mbqm(-3, 1 << 30, 0) == -1
    assert mbqm(3, 1 << 30, 0) == 2
    # ... the power-of-two divide rounds half away from zero (-1.5 -> -2, 1.5 -> 2)
    assert mbqm(-6, 1 << 30, -1) == -2
    assert mbqm(6, 1 << 30, -1) == 2
    assert mbqm(1000, 1 << 30, -2) == 125  # x * 0.5 / 4
    assert mbqm(7, 1 << 30, 1) == 7  # x * 0.5 * 2

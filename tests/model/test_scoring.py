"""agent.scoring.Scorer: what it returns, and each way a model or an input is refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import flatbuffers
import numpy as np
import pytest
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from agent.errors import AgentError
from agent.features import N_INPUTS
from agent.scoring import (
    InputError,
    ModelFileError,
    ModelMetaError,
    ModelShapeError,
    Score,
    Scorer,
    ScoringError,
)
from tests.model.conftest import MODEL

META: dict[str, Any] = json.loads(MODEL.with_suffix(".json").read_text())


def _write(tmp_path: Path, model: bytes, meta: dict[str, Any] | None = None) -> Path:
    """A model and its .json; the metadata's sha256 is made to match the bytes."""
    path = tmp_path / "m.tflite"
    path.write_bytes(model)
    meta = dict(META if meta is None else meta)
    meta["sha256"] = hashlib.sha256(model).hexdigest()
    path.with_suffix(".json").write_text(json.dumps(meta))
    return path


def _edited(edit: Any) -> bytes:
    """The committed model with its graph input tensor edited, repacked as a flatbuffer."""
    model = schema.ModelT.InitFromPackedBuf(bytearray(MODEL.read_bytes()), 0)
    graph = model.subgraphs[0]
    edit(graph.tensors[graph.inputs[0]])
    builder = flatbuffers.Builder(4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_score(scorer: Scorer) -> None:
    vector = np.linspace(-2, 2, N_INPUTS, dtype=np.float32)
    score = scorer.score(vector)
    assert len(score.input_q) == N_INPUTS <= 64
    assert score.risk_pm == scorer.risk_pm_from_q(score.output_q)
    assert score.model_id == "risk-v1"
    assert score.model_sha256 == hashlib.sha256(MODEL.read_bytes()).digest()
    assert scorer.score_q(score.input_q) == score.output_q
    # the input quantisation is the one recorded: q = floor(v / scale + 0.5) + zero point
    expected = np.floor(vector / scorer.input_scale + 0.5) + scorer.input_zero_point
    assert np.frombuffer(score.input_q, np.int8).tolist() == expected.astype(int).tolist()


def test_meta_defaults_to_the_json_beside_the_model(tmp_path: Path) -> None:
    path = _write(tmp_path, MODEL.read_bytes())
    other = tmp_path / "elsewhere.json"
    other.write_text(path.with_suffix(".json").read_text())
    path.with_suffix(".json").unlink()
    with pytest.raises(ModelMetaError, match="cannot read"):
        Scorer.load(path)
    assert Scorer.load(path, other).model_id == "risk-v1"


def test_missing_model(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="cannot read model"):
        Scorer.load(tmp_path / "nothing.tflite")


def test_corrupt_model(tmp_path: Path) -> None:
    good = MODEL.read_bytes()
    for bad in (b"not a model at all", good[: len(good) // 2]):
        with pytest.raises(ModelFileError):
            Scorer.load(_write(tmp_path, bad))


def test_metadata_of_another_model(tmp_path: Path) -> None:
    path = _write(tmp_path, MODEL.read_bytes())
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["sha256"] = "00" * 32
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ModelMetaError, match="SHA-256"):
        Scorer.load(path)


def test_metadata_not_json(tmp_path: Path) -> None:
    path = _write(tmp_path, MODEL.read_bytes())
    path.with_suffix(".json").write_text("{not json")
    with pytest.raises(ModelMetaError, match="not JSON"):
        Scorer.load(path)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda m: m["input"].update(scale=m["input"]["scale"] * 2), "quantisation"),
        (lambda m: m["output"].update(zero_point=m["output"]["zero_point"] + 1), "quantisation"),
        (lambda m: m["output"]["risk_pm"].__setitem__(0, 7), "risk_pm"),
        (lambda m: m["input"]["features"].reverse(), "layout"),
        (lambda m: m.pop("model_id"), "model_id"),
        (lambda m: m.__setitem__("input", [1]), "input block"),
        (lambda m: m.__setitem__("output", "logit"), "risk_pm"),
    ],
)
def test_metadata_that_does_not_fit_the_model(tmp_path: Path, edit: Any, match: str) -> None:
    meta = json.loads(json.dumps(META))
    edit(meta)
    with pytest.raises(ModelMetaError, match=match):
        Scorer.load(_write(tmp_path, MODEL.read_bytes(), meta))


def test_model_with_another_input_shape(tmp_path: Path) -> None:
    model = _edited(lambda t: setattr(t, "shape", np.array([1, N_INPUTS + 1], dtype=np.int32)))
    with pytest.raises(ModelShapeError, match=r"shape \(1, 20\)"):
        Scorer.load(_write(tmp_path, model))


def test_model_with_another_input_dtype(tmp_path: Path) -> None:
    model = _edited(lambda t: setattr(t, "type", schema.TensorType.UINT8))
    with pytest.raises(ModelShapeError, match="int8"):
        Scorer.load(_write(tmp_path, model))


@pytest.mark.parametrize(
    "vector",
    [
        np.zeros(N_INPUTS, dtype=np.float64),  # dtype
        np.zeros(N_INPUTS + 1, dtype=np.float32),  # length
        np.zeros((1, N_INPUTS), dtype=np.float32),  # shape
        np.full(N_INPUTS, np.nan, dtype=np.float32),  # value
    ],
)
def test_bad_vector(scorer: Scorer, vector: np.ndarray) -> None:
    with pytest.raises(InputError):
        scorer.score(vector)


def test_bad_raw_input(scorer: Scorer) -> None:
    with pytest.raises(InputError):
        scorer.score_q(bytes(N_INPUTS - 1))
    with pytest.raises(InputError):
        scorer.score_q("x" * N_INPUTS)  # type: ignore[arg-type]


def test_score_validates_itself() -> None:
    good = {
        "risk_pm": 1,
        "output_q": 0,
        "input_q": b"\x00",
        "model_id": "m",
        "model_sha256": bytes(32),
    }
    Score(**good)
    for field, value in [
        ("risk_pm", 1001),
        ("output_q", 128),
        ("input_q", bytes(65)),
        ("model_sha256", bytes(31)),
    ]:
        with pytest.raises(InputError):
            Score(**{**good, field: value})


def test_errors_share_the_agent_root() -> None:
    for cls in (ModelFileError, ModelShapeError, ModelMetaError, InputError):
        assert issubclass(cls, ScoringError) and issubclass(cls, AgentError)

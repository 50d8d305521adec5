"""On-device risk scoring: one wrapper over the TFLite interpreter and the model's metadata.

    scorer = Scorer.load("models/risk-v1.tflite")        # metadata: models/risk-v1.json
    vector = features.model_input(current, baseline, scorer.normalisation)
    score = scorer.score(vector)    # Score(risk_pm, output_q, input_q, model_id, model_sha256)

The interpreter is `tflite_runtime` (Raspberry Pi OS, CPython 3.11, numpy < 2), else its
successor `ai_edge_litert`. The model takes one int8 tensor of shape (1, n) and returns one int8
logit of shape (1, 1); `input_q` is what goes on the wire as a report's `features` and
`risk_pm` is the probability of an impostor in per-mille, looked up from `output_q` in the
256-entry table of the metadata (`risk_pm_from_q`), the same table firmware/lib/model_card.py
carries, so that the ESP32 gets the identical number with integer operations only. The table is
round(1000 * sigmoid(output_scale * (q - output_zero_point))), rounded half up, made at training.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.errors import AgentError
from agent.features import Fingerprint, Normalisation, model_input

MAX_INPUTS = 64  # a report's `features` holds at most 64 bytes


class ScoringError(AgentError):
    """The model cannot be loaded or a vector cannot be scored."""


class ModelFileError(ScoringError):
    """The .tflite file is missing, unreadable or not a valid model."""


class ModelShapeError(ScoringError):
    """The model's tensors are not one int8 (1, n) input and one int8 (1, 1) output."""


class ModelMetaError(ScoringError):
    """The metadata .json is missing or invalid, or does not describe this .tflite file."""


class InputError(ScoringError):
    """A vector or quantised input of the wrong length, dtype or value."""


@dataclass(frozen=True)
class Score:
    """One scored session: what a signed report carries about the model's verdict."""

    risk_pm: int  # probability of an impostor, per-mille, 0..1000
    output_q: int  # the model's int8 output (a logit)
    input_q: bytes  # the quantised int8 input tensor: a report's `features`
    model_id: str
    model_sha256: bytes  # SHA-256 of the .tflite file

    def __post_init__(self) -> None:
        if type(self.risk_pm) is not int or not 0 <= self.risk_pm <= 1000:
            raise InputError(f"risk_pm must be an int in 0..1000, got {self.risk_pm!r}")
        if type(self.output_q) is not int or not -128 <= self.output_q <= 127:
            raise InputError(f"output_q must be an int8 value, got {self.output_q!r}")
        if not isinstance(self.input_q, bytes) or not 0 < len(self.input_q) <= MAX_INPUTS:
            raise InputError(f"input_q must be 1..{MAX_INPUTS} bytes")
        if not isinstance(self.model_sha256, bytes) or len(self.model_sha256) != 32:
            raise InputError("model_sha256 must be 32 bytes")


def _interpreter_class() -> Any:
    """tflite_runtime's Interpreter, else ai_edge_litert's (its successor for newer Pythons)."""
    try:
        from tflite_runtime.interpreter import Interpreter
    except ImportError:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise ScoringError(
                "no TFLite interpreter: install tflite-runtime (Python <= 3.11) or ai-edge-litert"
            ) from exc
    return Interpreter


def risk_table(output_scale: float, output_zero_point: int) -> tuple[int, ...]:
    """The q -> risk_pm table (index q + 128): round half up of 1000 * sigmoid(real value)."""
    table = []
    for q in range(-128, 128):
        z = output_scale * (q - output_zero_point)
        p = 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
        table.append(min(1000, math.floor(1000.0 * p + 0.5)))
    return tuple(table)


# Run in a child process by `probe_model`: builds and prepares the interpreter, nothing else.
_PROBE = """
import sys
try:
    from tflite_runtime.interpreter import Interpreter
except ImportError:
    from ai_edge_litert.interpreter import Interpreter
Interpreter(model_content=sys.stdin.buffer.read(), num_threads=1).allocate_tensors()
"""


def probe_model(model_bytes: bytes, source: str, timeout_s: float = 60.0) -> None:
    """Build and prepare the model in a child process; ModelFileError if that fails or crashes.

    tflite-runtime does not verify the flatbuffer: a truncated or crafted file can crash the
    process (a segmentation fault, not an exception). The child takes the crash instead.
    """
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE],
            input=model_bytes,
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModelFileError(f"{source}: cannot check the model in a child process: {exc}") from exc
    if proc.returncode != 0:
        lines = proc.stderr.decode(errors="replace").strip().splitlines()
        why = lines[-1] if lines else f"the interpreter crashed (exit status {proc.returncode})"
        raise ModelFileError(f"{source} is not a valid TFLite model: {why}")


class Scorer:
    """A loaded model and its metadata. Thread-safe: invocations are serialised."""

    def __init__(
        self, model_bytes: bytes, meta: Mapping[str, Any], source: str, probe: bool = True
    ) -> None:
        self.model_sha256 = hashlib.sha256(model_bytes).digest()
        self._check_meta(meta, source)
        if probe:
            probe_model(model_bytes, source)
        self.meta = dict(meta)
        self.model_id: str = meta["model_id"]
        try:
            # Normalisation also refuses a feature layout other than agent.features' own.
            self.normalisation = Normalisation.from_meta(meta)
        except AgentError as exc:
            raise ModelMetaError(f"{source}: {exc}") from exc
        try:
            self._interp = _interpreter_class()(model_content=model_bytes, num_threads=1)
        except (ValueError, RuntimeError) as exc:
            raise ModelFileError(f"{source} is not a valid TFLite model: {exc}") from exc
        # Shapes and types first: a model for another feature layout fails with that reason,
        # not with an op's complaint during allocation.
        inputs = self._interp.get_input_details()
        outputs = self._interp.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelShapeError(f"{source}: expected one input and one output tensor")
        inp, out = inputs[0], outputs[0]
        n = len(self.normalisation.names)
        if inp["dtype"] != np.int8 or tuple(inp["shape"]) != (1, n):
            raise ModelShapeError(
                f"{source}: input must be int8 of shape (1, {n}), "
                f"got {np.dtype(inp['dtype']).name} {tuple(inp['shape'])}"
            )
        if out["dtype"] != np.int8 or tuple(out["shape"]) != (1, 1):
            raise ModelShapeError(
                f"{source}: output must be int8 of shape (1, 1), "
                f"got {np.dtype(out['dtype']).name} {tuple(out['shape'])}"
            )
        self.n_inputs = n
        self.input_scale, self.input_zero_point = (
            float(inp["quantization"][0]),
            int(inp["quantization"][1]),
        )
        self.output_scale, self.output_zero_point = (
            float(out["quantization"][0]),
            int(out["quantization"][1]),
        )
        self._check_quantisation(meta, source)
        try:
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelFileError(f"{source}: the interpreter cannot prepare it: {exc}") from exc
        self._in_index = inp["index"]
        self._out_index = out["index"]
        self._table: tuple[int, ...] = tuple(meta["output"]["risk_pm"])
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls, model_path: str | Path, meta_path: str | Path | None = None, *, probe: bool = True
    ) -> Scorer:
        """Load a .tflite model and its metadata (default: the .json beside it).

        The SHA-256 of the file must be the metadata's. With `probe` (the default) the model is
        first built in a child process (`probe_model`), so that a corrupt file is an error
        here rather than a crash of the agent.
        """
        model_path = Path(model_path)
        meta_path = Path(meta_path) if meta_path is not None else model_path.with_suffix(".json")
        try:
            model_bytes = model_path.read_bytes()
        except OSError as exc:
            raise ModelFileError(f"cannot read model {model_path}: {exc.strerror}") from exc
        try:
            meta = json.loads(meta_path.read_text())
        except OSError as exc:
            raise ModelMetaError(f"cannot read model metadata {meta_path}: {exc.strerror}") from exc
        except json.JSONDecodeError as exc:
            raise ModelMetaError(f"{meta_path} is not JSON: {exc}") from exc
        if not isinstance(meta, dict):
            raise ModelMetaError(f"{meta_path} must hold a JSON object")
        return cls(model_bytes, meta, str(model_path), probe)

    # ---- checks at load -----------------------------------------------------------------------

    def _check_meta(self, meta: Mapping[str, Any], source: str) -> None:
        model_id = meta.get("model_id")
        if not isinstance(model_id, str) or not 0 < len(model_id) <= 64:
            raise ModelMetaError(f"{source}: metadata model_id must be a text of 1..64 chars")
        recorded = meta.get("sha256")
        if recorded != self.model_sha256.hex():
            raise ModelMetaError(
                f"{source}: SHA-256 {self.model_sha256.hex()} differs from the metadata's "
                f"{recorded!r}: the .json belongs to another model file"
            )
        output = meta.get("output")
        table = output.get("risk_pm") if isinstance(output, dict) else None
        if (
            not isinstance(table, list)
            or len(table) != 256
            or not all(type(v) is int and 0 <= v <= 1000 for v in table)
            or any(a > b for a, b in itertools.pairwise(table))
        ):
            raise ModelMetaError(
                f"{source}: output.risk_pm must be 256 non-decreasing ints 0..1000"
            )

    def _check_quantisation(self, meta: Mapping[str, Any], source: str) -> None:
        try:
            recorded = (
                float(meta["input"]["scale"]),
                int(meta["input"]["zero_point"]),
                float(meta["output"]["scale"]),
                int(meta["output"]["zero_point"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelMetaError(f"{source}: metadata lacks quantisation: {exc}") from exc
        actual = (
            self.input_scale,
            self.input_zero_point,
            self.output_scale,
            self.output_zero_point,
        )
        if any(not math.isclose(a, b, rel_tol=1e-6) for a, b in zip(recorded, actual, strict=True)):
            raise ModelMetaError(f"{source}: metadata quantisation {recorded} != model {actual}")
        if tuple(meta["output"]["risk_pm"]) != risk_table(
            self.output_scale, self.output_zero_point
        ):
            raise ModelMetaError(f"{source}: output.risk_pm is not the table of this output")

    # ---- scoring ------------------------------------------------------------------------------

    def quantise(self, vector: npt.ArrayLike) -> bytes:
        """float32 vector -> int8 input tensor bytes: round half up of x / scale + zero point."""
        x = np.asarray(vector)
        if x.dtype != np.float32 or x.shape != (self.n_inputs,):
            raise InputError(
                f"vector must be float32 of shape ({self.n_inputs},), got {x.dtype} {x.shape}"
            )
        if not np.all(np.isfinite(x)):
            raise InputError("vector has a NaN or infinite value")
        q = np.floor(x.astype(np.float64) / self.input_scale + 0.5) + self.input_zero_point
        return bytes(np.clip(q, -128, 127).astype(np.int8).tobytes())

    def score_q(self, input_q: bytes) -> int:
        """Run the model on raw int8 input bytes; the int8 output (for parity checks)."""
        if not isinstance(input_q, bytes | bytearray) or len(input_q) != self.n_inputs:
            raise InputError(f"input_q must be {self.n_inputs} bytes")
        tensor = np.frombuffer(bytes(input_q), dtype=np.int8).reshape(1, self.n_inputs)
        with self._lock:
            self._interp.set_tensor(self._in_index, tensor)
            self._interp.invoke()
            return int(self._interp.get_tensor(self._out_index)[0, 0])

    def risk_pm_from_q(self, output_q: int) -> int:
        """risk_pm for an int8 output: the table lookup the firmware does too."""
        return self._table[output_q + 128]

    def score(self, vector: npt.ArrayLike) -> Score:
        """Quantise, invoke and map a float32 input vector (agent.features.model_input)."""
        input_q = self.quantise(vector)
        output_q = self.score_q(input_q)
        return Score(
            risk_pm=self.risk_pm_from_q(output_q),
            output_q=output_q,
            input_q=input_q,
            model_id=self.model_id,
            model_sha256=self.model_sha256,
        )

    def score_fingerprint(self, current: Fingerprint, baseline: Fingerprint) -> Score:
        """Score a session's fingerprint against the device's enrolled baseline."""
        return self.score(model_input(current, baseline, self.normalisation))

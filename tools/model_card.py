"""python -m tools.model_card [MODEL]: write firmware/lib/model_card.py from a .tflite model.

The firmware has no TFLite, so it carries the model as constants: per fully-connected layer the
int8 weights, int32 biases, zero points, the fixed-point output multipliers and shifts and the
activation clamp, each computed exactly as TensorFlow Lite (Micro) computes them when it
prepares the op (kernel_util.cc: GetQuantizedConvolutionMultipler, QuantizeMultiplier,
CalculateActivationRangeQuantized), so that firmware/lib/scorer.py is bit-exact with it.

The flatbuffer is read with the schema that tflite-micro ships; no TensorFlow needed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "models" / "risk-v1.tflite"
CARD_PATH = ROOT / "firmware" / "lib" / "model_card.py"

_FULLY_CONNECTED = 9
_INT8, _INT32 = 9, 2
_ACT_NONE, _ACT_RELU, _ACT_RELU6 = 0, 1, 3


class ModelCardError(Exception):
    """The model is not a chain of int8 fully-connected layers the firmware can run."""


@dataclass(frozen=True)
class Layer:
    """One int8 FULLY_CONNECTED op, ready for integer-only evaluation."""

    n_in: int
    n_out: int
    weights: bytes  # int8, row-major (n_out, n_in)
    bias: tuple[int, ...]  # int32
    input_zero_point: int
    output_zero_point: int
    multipliers: tuple[int, ...]  # per output channel (repeated when per-tensor)
    shifts: tuple[int, ...]
    act_min: int
    act_max: int


def tflite_round(x: float) -> int:
    """std::round: half away from zero."""
    return math.floor(abs(x) + 0.5) * (1 if x >= 0 else -1)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: real = m * 2**(shift - 31), m in [2**30, 2**31)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = tflite_round(q * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def _schema() -> Any:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated

    return schema_py_generated


def _quant(tensor: Any) -> tuple[list[float], list[int]]:
    q = tensor.quantization
    if q is None or q.scale is None or q.zeroPoint is None:
        raise ModelCardError(f"tensor {tensor.name!r} is not quantised")
    return [float(s) for s in q.scale], [int(z) for z in q.zeroPoint]


def parse(model_bytes: bytes) -> tuple[list[Layer], dict[str, Any]]:
    """The layers of a chain of int8 FULLY_CONNECTED ops, and the input/output quantisation."""
    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    if len(model.subgraphs) != 1:
        raise ModelCardError("expected one subgraph")
    graph = model.subgraphs[0]
    tensors = graph.tensors
    codes = model.operatorCodes

    def data(index: int, dtype: type) -> np.ndarray:
        buf = model.buffers[tensors[index].buffer].data
        if buf is None:
            raise ModelCardError(f"tensor {tensors[index].name!r} has no constant data")
        return np.frombuffer(bytes(bytearray(buf)), dtype=dtype)

    layers: list[Layer] = []
    current = graph.inputs[0]
    for op in graph.operators:
        code = codes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        if builtin != _FULLY_CONNECTED:
            raise ModelCardError(f"op {builtin} is not FULLY_CONNECTED; the firmware runs FC only")
        x, w, b = op.inputs
        (y,) = op.outputs
        if x != current:
            raise ModelCardError("ops are not a simple chain")
        if tensors[x].type != _INT8 or tensors[w].type != _INT8 or tensors[y].type != _INT8:
            raise ModelCardError("FC tensors must be int8")
        if b < 0 or tensors[b].type != _INT32:
            raise ModelCardError("FC bias must be int32")
        n_out, n_in = (int(d) for d in tensors[w].shape)
        x_scale, x_zp = _quant(tensors[x])
        w_scale, w_zp = _quant(tensors[w])
        y_scale, y_zp = _quant(tensors[y])
        if any(z != 0 for z in w_zp):
            raise ModelCardError("weights must be symmetric (zero point 0)")
        if len(w_scale) not in (1, n_out):
            raise ModelCardError("weight scales must be per tensor or per output channel")
        mults, shifts = [], []
        for c in range(n_out):
            # kernel_util.cc: (double) input scale * (double) filter scale / (double) output scale
            real = x_scale[0] * w_scale[c if len(w_scale) > 1 else 0] / y_scale[0]
            m, s = quantize_multiplier(real)
            mults.append(m)
            shifts.append(s)
        act = op.builtinOptions.fusedActivationFunction
        if act == _ACT_NONE:
            lo, hi = -128, 127
        elif act == _ACT_RELU:
            lo, hi = max(-128, y_zp[0] + tflite_round(0.0 / y_scale[0])), 127
        elif act == _ACT_RELU6:
            lo = max(-128, y_zp[0])
            hi = min(127, y_zp[0] + tflite_round(6.0 / y_scale[0]))
        else:
            raise ModelCardError(f"fused activation {act} is not supported")
        layers.append(
            Layer(
                n_in=n_in,
                n_out=n_out,
                weights=data(w, np.int8).tobytes(),
                bias=tuple(int(v) for v in data(b, np.int32)),
                input_zero_point=x_zp[0],
                output_zero_point=y_zp[0],
                multipliers=tuple(mults),
                shifts=tuple(shifts),
                act_min=lo,
                act_max=hi,
            )
        )
        current = y
    if current != graph.outputs[0] or not layers:
        raise ModelCardError("the last FC op must produce the model output")
    in_scale, in_zp = _quant(tensors[graph.inputs[0]])
    out_scale, out_zp = _quant(tensors[graph.outputs[0]])
    io = {
        "input_scale": in_scale[0],
        "input_zero_point": in_zp[0],
        "output_scale": out_scale[0],
        "output_zero_point": out_zp[0],
    }
    return layers, io


def _tuple(values: Any, per_line: int = 16, indent: str = "    ") -> str:
    items = [repr(v) for v in values]
    lines = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    inner = indent + "    "
    return "(\n" + "".join(f"{inner}{line},\n" for line in lines) + indent + ")"


def _bytes(data: bytes, per_line: int = 24, indent: str = "    ") -> str:
    chunks = [data[i : i + per_line] for i in range(0, len(data), per_line)]
    inner = indent + "    "
    body = "".join(inner + "b'" + "".join(f"\\x{c:02x}" for c in ch) + "'\n" for ch in chunks)
    return "(\n" + body + indent + ")"


def render(model_bytes: bytes, meta: dict[str, Any]) -> str:
    """The source text of firmware/lib/model_card.py for a model and its metadata."""
    layers, io = parse(model_bytes)
    sha = hashlib.sha256(model_bytes).hexdigest()
    if meta.get("sha256") != sha:
        raise ModelCardError("the metadata's sha256 is not the model's")
    model_id = meta["model_id"]
    out = [
        '"""The committed risk model as constants for firmware/lib/scorer.py.',
        "",
        f"Generated by `python -m tools.model_card` from models/{model_id}.tflite; do not edit.",
        "LAYERS rows: (n_in, n_out, weights int8 row-major, bias int32, input zero point,",
        "output zero point, output multipliers, output shifts, activation min, max).",
        "RISK_PM[q + 128] is risk_pm for the int8 output q.",
        '"""',
        "",
        f"MODEL_ID = {model_id!r}",
        f"MODEL_SHA256 = {sha!r}",
        f"N_INPUTS = {layers[0].n_in}",
        f"INPUT_SCALE = {io['input_scale']!r}",
        f"INPUT_ZERO_POINT = {io['input_zero_point']}",
        f"OUTPUT_SCALE = {io['output_scale']!r}",
        f"OUTPUT_ZERO_POINT = {io['output_zero_point']}",
        f"FEATURES = {_tuple(meta['input']['features'], 4, '')}",
        f"SCALES = {_tuple(meta['input']['scales'], 4, '')}",
        f"CLIP = {float(meta['input']['clip'])!r}",
        "LAYERS = (",
    ]
    ind = "        "
    for layer in layers:
        out += [
            "    (",
            f"{ind}{layer.n_in},",
            f"{ind}{layer.n_out},",
            f"{ind}{_bytes(layer.weights, indent=ind)},",
            f"{ind}{_tuple(layer.bias, 8, ind)},",
            f"{ind}{layer.input_zero_point},",
            f"{ind}{layer.output_zero_point},",
            f"{ind}{_tuple(layer.multipliers, 6, ind)},",
            f"{ind}{_tuple(layer.shifts, 16, ind)},",
            f"{ind}{layer.act_min},",
            f"{ind}{layer.act_max},",
            "    ),",
        ]
    out += [")", f"RISK_PM = {_tuple(meta['output']['risk_pm'], 16, '')}", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.model_card", description=__doc__)
    parser.add_argument("model", type=Path, nargs="?", default=DEFAULT_MODEL)
    parser.add_argument("--out", type=Path, default=CARD_PATH)
    args = parser.parse_args(argv)
    meta = json.loads(args.model.with_suffix(".json").read_text())
    args.out.write_text(render(args.model.read_bytes(), meta))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

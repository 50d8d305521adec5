"""python -m tools.train_model: train, quantise and export the on-device risk model (TensorFlow).

Reproducible from fixed seeds: the cohorts come from agent.simulator (train and validation seed
ranges, device-disjoint), TensorFlow runs single-threaded with deterministic ops, and training
has a fixed number of epochs. Writes:

- models/risk-v1.tflite: full-integer int8 model (int8 input and output tensors), a chain of
  FULLY_CONNECTED ops (the last one a linear logit: no LOGISTIC op, see docs/model.md);
- models/risk-v1.json: model id, SHA-256, TensorFlow version, the input normalisation, the
  quantisation of input and output, the risk_pm table, the training recipe and its metrics;
- firmware/lib/model_card.py: the same model as constants for firmware/lib/scorer.py.

Run it with a TensorFlow venv (see docs/model.md), from the repository root.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")

import numpy as np

from agent.features import CLIP, INPUT_FEATURES, Normalisation, raw_deltas
from agent.scoring import risk_table
from agent.simulator.cohort import GENUINE, SPLITS, cohort
from tools import eval_model, model_card

ROOT = Path(__file__).resolve().parents[1]
MODEL_ID = "risk-v1"
SEED = 20261128
HIDDEN = (32, 16)
EPOCHS = 60
BATCH = 256
LEARNING_RATE = 3e-3
LABEL_SMOOTHING = 0.02
#: Features whose genuine spread is no useful scale (always 0 or a flag): a fixed unit instead.
FIXED_SCALES = {"repeat_pm": 10.0, "has_touch": 1.0, "d_ln_quant_gap": 0.1}
BEHAVIOUR = {"d_ln_iti_median", "d_iti_logsd_milli", "d_ln_hold_median", "d_hold_logsd_milli"}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _progress(label: str):  # type: ignore[no-untyped-def]
    started = time.monotonic()

    def report(done: int, total: int) -> None:
        if done == total or done % max(1, total // 10) == 0:
            log(f"  {label}: devices {done}/{total} ({time.monotonic() - started:.0f} s)")

    return report


def build(first_seed: int, devices: int, genuine: int, per_impostor: int, label: str):  # type: ignore[no-untyped-def]
    """(raw deltas, labels, kinds) of a cohort."""
    rows = list(cohort(first_seed, devices, genuine, per_impostor, _progress(label)))
    raw = np.array([raw_deltas(r.current, r.baseline) for r in rows])
    labels = np.array([r.label for r in rows])
    return raw, labels


def fit_scales(raw: np.ndarray, labels: np.ndarray) -> Normalisation:
    """Robust sd (1.4826 MAD) of each delta over genuine sessions, behaviour over touch ones."""
    genuine = raw[labels == GENUINE]
    touch = genuine[genuine[:, INPUT_FEATURES.index("has_touch")] > 0]
    scales = []
    for i, name in enumerate(INPUT_FEATURES):
        if name in FIXED_SCALES:
            scales.append(FIXED_SCALES[name])
            continue
        col = (touch if name in BEHAVIOUR else genuine)[:, i]
        mad = 1.4826 * float(np.median(np.abs(col - np.median(col))))
        scales.append(float(f"{max(mad, 1e-6):.6g}"))
    return Normalisation(names=INPUT_FEATURES, scales=tuple(scales), clip=CLIP)


def train(x: np.ndarray, y: np.ndarray, w: np.ndarray, epochs: int) -> Any:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    layers = [tf.keras.Input(shape=(x.shape[1],), dtype=tf.float32)]
    layers += [tf.keras.layers.Dense(n, activation="relu") for n in HIDDEN]
    layers += [tf.keras.layers.Dense(1)]
    model = tf.keras.Sequential(layers)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(LEARNING_RATE),
        # Smoothing bounds the logits (about +-ln(199) for 0.01), so the int8 output spends its
        # 256 steps where genuine and impostor sessions meet, not on certainties.
        loss=tf.keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=LABEL_SMOOTHING),
    )

    class Progress(tf.keras.callbacks.Callback):  # type: ignore[misc]
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            if (epoch + 1) % 5 == 0 or epoch == 0:
                log(f"  epoch {epoch + 1}/{epochs}: loss {(logs or {}).get('loss', 0):.4f}")

    model.fit(
        x,
        y,
        sample_weight=w,
        epochs=epochs,
        batch_size=BATCH,
        shuffle=True,
        verbose=0,
        callbacks=[Progress()],
    )
    return model


def _dense_weights(model: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(layer.kernel.numpy(), layer.bias.numpy()) for layer in model.layers]


def convert(model: Any, x: np.ndarray) -> bytes:
    """Full-integer int8 TFLite; the representative set spans the clipped input range."""
    import tensorflow as tf

    rng = np.random.default_rng(SEED)
    sample = x[rng.choice(len(x), size=min(2000, len(x)), replace=False)]
    corners = np.stack([np.full(x.shape[1], -CLIP), np.full(x.shape[1], CLIP)])
    calibration = np.concatenate([corners, sample]).astype(np.float32)

    def representative():  # type: ignore[no-untyped-def]
        for row in calibration:
            yield [row[None, :]]

    # The trained weights as constants: the TF 2.16 converter cannot read Keras 3 variables
    # ("missing attribute 'value'"), and constants make the graph plain MatMul + BiasAdd (+ Relu),
    # which it folds into FULLY_CONNECTED ops.
    dense = [(tf.constant(k), tf.constant(b)) for k, b in _dense_weights(model)]

    @tf.function(input_signature=[tf.TensorSpec([1, x.shape[1]], tf.float32)])
    def serve(v):  # type: ignore[no-untyped-def]
        for i, (kernel, bias) in enumerate(dense):
            v = tf.matmul(v, kernel) + bias
            if i < len(dense) - 1:
                v = tf.nn.relu(v)
        return v

    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return bytes(converter.convert())


def tflite_scores(model_bytes: bytes, xq_float: np.ndarray, io: dict[str, Any]) -> np.ndarray:
    """int8 outputs of the quantised model (tflite-runtime, as on the device)."""
    from tflite_runtime.interpreter import Interpreter

    interp = Interpreter(model_content=model_bytes, num_threads=1)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]["index"]
    out = interp.get_output_details()[0]["index"]
    q = np.floor(xq_float.astype(np.float64) / io["input_scale"] + 0.5) + io["input_zero_point"]
    q = np.clip(q, -128, 127).astype(np.int8)
    scores = np.empty(len(q), dtype=np.int64)
    for i, row in enumerate(q):
        interp.set_tensor(inp, row[None, :])
        interp.invoke()
        scores[i] = int(interp.get_tensor(out)[0, 0])
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.train_model", description=__doc__)
    parser.add_argument("--devices", type=int, default=1600, help="training devices")
    parser.add_argument("--val-devices", type=int, default=400, help="validation devices")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--out", type=Path, default=ROOT / "models")
    parser.add_argument("--card", type=Path, default=model_card.CARD_PATH)
    args = parser.parse_args(argv)
    import tensorflow as tf

    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    started = time.monotonic()
    recipe = {
        "seed": SEED,
        "train": {
            "first_seed": SPLITS["train"],
            "devices": args.devices,
            "genuine": 8,
            "per_impostor": 2,
        },
        "validation": {
            "first_seed": SPLITS["validation"],
            "devices": args.val_devices,
            "genuine": 8,
            "per_impostor": 3,
        },
        "hidden": list(HIDDEN),
        "epochs": args.epochs,
        "batch": BATCH,
        "learning_rate": LEARNING_RATE,
        "label_smoothing": LABEL_SMOOTHING,
    }
    log(f"[1/5] simulating {args.devices} training devices")
    raw, labels = build(SPLITS["train"], args.devices, 8, 2, "train")
    log(f"[2/5] simulating {args.val_devices} validation devices")
    val_raw, val_labels = build(SPLITS["validation"], args.val_devices, 8, 3, "validation")
    norm = fit_scales(raw, labels)
    x = norm.apply(raw)
    y = (labels != GENUINE).astype(np.float32)
    # Balance: genuine and impostor halves weigh the same, impostor kinds equally within.
    w = np.ones(len(y), dtype=np.float32)
    kinds = sorted(set(labels) - {GENUINE})
    w[labels == GENUINE] = 0.5 / np.mean(labels == GENUINE)
    for k in kinds:
        w[labels == k] = 0.5 / len(kinds) / np.mean(labels == k)
    log(f"[3/5] training {len(x)} sessions ({int(y.sum())} impostor), {args.epochs} epochs")
    model = train(x, y, w, args.epochs)
    log("[4/5] converting to int8 TFLite")
    model_bytes = convert(model, x)
    layers, io = model_card.parse(model_bytes)
    log("[5/5] validating the quantised model")
    val_scores = tflite_scores(model_bytes, norm.apply(val_raw), io)
    val = eval_model.metrics(list(val_labels), val_scores)
    meta = {
        "model_id": MODEL_ID,
        "sha256": hashlib.sha256(model_bytes).hexdigest(),
        "bytes": len(model_bytes),
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
        "input": {
            **norm.to_meta(),
            "transform": "clip(sign(x) * ln(1 + |x|), -clip, clip) with x = raw / scale",
            "dtype": "int8",
            "scale": io["input_scale"],
            "zero_point": io["input_zero_point"],
            "quantise": "q = clamp(floor(v / scale + 0.5) + zero_point, -128, 127)",
        },
        "output": {
            "meaning": "logit of P(impostor)",
            "dtype": "int8",
            "scale": io["output_scale"],
            "zero_point": io["output_zero_point"],
            "risk_pm_rule": "risk_pm = risk_pm[q + 128] = floor(1000 * sigmoid(scale * "
            "(q - zero_point)) + 0.5)",
            "risk_pm": list(risk_table(io["output_scale"], io["output_zero_point"])),
        },
        "layers": [{"in": layer.n_in, "out": layer.n_out} for layer in layers],
        "training": recipe,
        "validation": val,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{MODEL_ID}.tflite").write_bytes(model_bytes)
    (args.out / f"{MODEL_ID}.json").write_text(json.dumps(meta, indent=1) + "\n")
    args.card.write_text(model_card.render(model_bytes, meta))
    log(
        f"done in {time.monotonic() - started:.0f} s: {len(model_bytes)} bytes, sha256 "
        f"{meta['sha256'][:16]}..., validation AUC {val['auc']:.4f}, "
        f"TPR@1%FPR {val['tpr_at_1pct_fpr']:.3f}, per kind "
        + ", ".join(f"{k} {v['detected']:.3f}" for k, v in val["per_kind"].items())  # type: ignore[attr-defined]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

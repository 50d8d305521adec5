"""Model update over the air: a corrupt model is rejected and the device stays on the one it
had (the rollback), a good one is installed; reports never stop and nothing is lost.

The model files are served over HTTP by the bench on the host (reachable from the rig's
namespace at the host's end of its link); the command is signed with the bridge's key and
published as the operator's tools do. The Linux agent takes a TFLite model with its metadata,
the ESP32 a model card (firmware/lib/model_card.py).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from hil_tests.bench import Bench
from hil_tests.profile import Profile
from hil_tests.report import Figure
from hil_tests.rigs.base import KIND_ESP32, Rig
from hil_tests.steps import caught_up, counters, loss, wait
from hil_tests.test_delivery import started

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def http_server(directory: Path) -> Iterator[int]:
    """A static HTTP server for ``directory`` on every address; its port."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def files(rig: Rig, served: Path) -> dict[str, tuple[Path, ...]]:
    """The good and the corrupt update for the rig's kind: (model[, metadata]) each."""
    served.mkdir(parents=True, exist_ok=True)
    if rig.kind == KIND_ESP32:
        good = (ROOT / "firmware" / "lib" / "model_card.py").read_bytes()
        (served / "good.py").write_bytes(good)
        (served / "corrupt.py").write_bytes(good[: len(good) // 2])  # cut short in transfer
        return {"good": (served / "good.py",), "corrupt": (served / "corrupt.py",)}
    model = (ROOT / "models" / "risk-v1.tflite").read_bytes()
    (served / "good.tflite").write_bytes(model)
    (served / "corrupt.tflite").write_bytes(model[: len(model) // 2])
    (served / "meta.json").write_bytes((ROOT / "models" / "risk-v1.json").read_bytes())
    return {
        "good": (served / "good.tflite", served / "meta.json"),
        "corrupt": (served / "corrupt.tflite", served / "meta.json"),
    }


def command_args(paths: tuple[Path, ...], base: str) -> dict[str, object]:
    """The model command's arguments: the hashes are right, as a signed command's would be
    for a file corrupted before it was published."""
    args: dict[str, object] = {
        "model_id": "risk-v1",
        "sha256": hashlib.sha256(paths[0].read_bytes()).digest(),
        "url": f"{base}/{paths[0].name}",
    }
    if len(paths) > 1:
        args["meta_url"] = f"{base}/{paths[1].name}"
        args["meta_sha256"] = hashlib.sha256(paths[1].read_bytes()).digest()
    return args


def test_model_update_corrupt_rolled_back_good_installed(
    bench: Bench, rig: Rig, profile: Profile, record: Figure, tmp_path: Path
) -> None:
    started(bench, rig, "model_update")
    host = urlsplit(rig.connect_url(bench.broker_url)).hostname or "127.0.0.1"
    updates = files(rig, tmp_path / "served")
    results: dict[str, str] = {}
    took: dict[str, float] = {}
    with http_server(tmp_path / "served") as port:
        for name in ("corrupt", "good"):
            before = bench.reports(rig.device_id)[-1].model_sha256
            asked = time.monotonic()
            seq = bench.send_command(
                rig.device_id, "model", command_args(updates[name], f"http://{host}:{port}")
            )
            answered = wait(lambda s=seq: bool(bench.answers(rig.device_id, s)), 60, 0.25)  # type: ignore[misc]
            took[name] = time.monotonic() - asked
            results[name] = bench.answers(rig.device_id, seq)[0] if answered else "(no answer)"
            record.add("answer time (s)", len(took), took[name])
            if name == "corrupt":
                after = bench.reports(rig.device_id)[-1].model_sha256
                results["rollback"] = "kept the old model" if after == before else "CHANGED"
    record.x_label = "update"
    record.y_label = "seconds to the answer"
    last = counters(rig).last_seq
    caught = wait(lambda: caught_up(bench, rig, last), profile.drain_s)
    rig.stop()
    result = loss(bench, rig)
    record.summary = (
        f"corrupt: {results['corrupt']!r} in {took['corrupt']:.1f} s, "
        f"{results.get('rollback', '?')}; good: {results['good']!r} in {took['good']:.1f} s; "
        f"{result}"
    )
    assert results["corrupt"].startswith("model_rejected"), record.summary
    assert results["rollback"] == "kept the old model", record.summary
    assert results["good"] == "ok", f"{record.summary}\n{rig.logs()[-2000:]}"
    assert caught and result.ok, record.summary

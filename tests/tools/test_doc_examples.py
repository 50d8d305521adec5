"""Shell examples in the docs run as written.

A fenced block whose info string is `sh runnable` is executed by `bash -euo pipefail` from the
repository root, with `python`, `cloud-bridge` and `edge-agent` from this interpreter's
environment, against live traffic: a private broker with a real bridge and a real agent
publishing, named to the example by `BROKER` and `BRIDGE_DATA` (the variables the examples
default, for a reader, to a local broker and the bridge's data directory). `sh runnable scratch`
runs the block in an empty temporary directory instead, with no broker: for examples that make
their own files (`var/bridge`).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bridge.harness import ROOT, Bridge
from tests.harness.mosquitto import Mosquitto

pytestmark = [pytest.mark.broker, pytest.mark.slow]

_BLOCK = re.compile(r"^```sh runnable( scratch)?\n(.*?)^```", re.S | re.M)
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def runnable_blocks(scratch: bool) -> list[tuple[str, str]]:
    """(where, script) for every runnable block of the docs, of one mode."""
    out = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in _BLOCK.finditer(text):
            if bool(match.group(1)) is scratch:
                line = text.count("\n", 0, match.start()) + 1
                out.append((f"{path.relative_to(ROOT)}:{line}", match.group(2)))
    return out


LIVE = runnable_blocks(scratch=False)
SCRATCH = runnable_blocks(scratch=True)


def test_the_docs_have_runnable_examples() -> None:
    # At least the tap and contract-check examples of docs/protocol.md and the broker files of
    # docs/operations.md (the pool quick start has its own test: tests/pool/test_docs.py).
    scripts = "\n".join(script for _where, script in LIVE)
    assert "tools.tap" in scripts and "tools/contract/check.sh" in scripts
    assert any("cloud-bridge broker-config" in script for _where, script in SCRATCH)


def _run(where: str, script: str, cwd: Path, **env: str) -> None:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd, env={**os.environ, "PATH": path, **env},
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, f"{where} failed:\n{script}\n{run.stdout}\n{run.stderr}"
    assert run.stdout.strip(), f"{where} printed nothing"


@pytest.mark.parametrize(("where", "script"), LIVE, ids=[w for w, _s in LIVE])
def test_runnable_example_runs_as_written(
    where: str, script: str, tmp_path: Path, open_broker: Mosquitto
) -> None:
    # An open broker, as the examples' default (the local development broker): they show the
    # contract's tools, not the broker's accounts (tests/broker covers those).
    bridge = Bridge.create(tmp_path / "bridge", open_broker.url)
    dev = bridge.device(tmp_path, "rig-1", "phone", open_broker.url, "u-1", interval_s=0.2)
    bridge.open_pool("u-1")
    bridge.start()
    dev.start()
    try:
        _run(where, script, ROOT, BROKER=open_broker.url, BRIDGE_DATA=str(bridge.data))
    finally:
        dev.stop()
        bridge.stop()


@pytest.mark.parametrize(("where", "script"), SCRATCH, ids=[w for w, _s in SCRATCH])
def test_runnable_example_runs_as_written_in_an_empty_directory(
    where: str, script: str, tmp_path: Path
) -> None:
    _run(where, script, tmp_path, PYTHONPATH=str(ROOT))

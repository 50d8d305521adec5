"""Shell examples in the docs run as written.

A fenced block whose info string is `sh runnable` is executed by bash, from the repository root,
with `python` being this interpreter, against live traffic: a private broker with a real bridge
and a real agent publishing, named to the example by `BROKER` and `BRIDGE_DATA` (the variables
the examples default, for a reader, to a local broker and the bridge's data directory).
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

_BLOCK = re.compile(r"^```sh runnable\n(.*?)^```", re.S | re.M)
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def runnable_blocks() -> list[tuple[str, str]]:
    """(where, script) for every runnable block of the docs."""
    out = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in _BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            out.append((f"{path.relative_to(ROOT)}:{line}", match.group(1)))
    return out


BLOCKS = runnable_blocks()


def test_the_docs_have_runnable_examples() -> None:
    # The tap and the contract-check examples of docs/protocol.md sections 7 and 8 at least.
    scripts = "\n".join(script for _where, script in BLOCKS)
    assert "tools.tap" in scripts and "tools/contract/check.sh" in scripts


@pytest.mark.parametrize(("where", "script"), BLOCKS, ids=[w for w, _s in BLOCKS])
def test_runnable_example_runs_as_written(
    where: str, script: str, tmp_path: Path, private_broker: Mosquitto
) -> None:
    bridge = Bridge.create(tmp_path / "bridge", private_broker.url)
    dev = bridge.device(tmp_path, "rig-1", "phone", private_broker.url, "u-1", interval_s=0.2)
    bridge.open_pool("u-1")
    bridge.start()
    dev.start()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "BROKER": private_broker.url,
        "BRIDGE_DATA": str(bridge.data),
    }
    try:
        run = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
        )  # fmt: skip
    finally:
        dev.stop()
        bridge.stop()
    assert run.returncode == 0, f"{where} failed:\n{script}\n{run.stdout}\n{run.stderr}"
    assert run.stdout.strip(), f"{where} printed nothing"

"""Verifiers this project did not write, each in its own interpreter path.

pycose needs cbor2 5.x (cbor2 6 decodes arrays inside tags as tuples, which pycose refuses),
while this project needs cbor2 >= 6. So pycose lives in its own `pip --target` directory,
installed by .ci/run (or on first use here) and run as a subprocess with only that directory on
its path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGET = ROOT / ".cache" / "pycose"
REQUIREMENTS = ["pycose==1.1.0", "cbor2==5.9.0"]
SCRIPT = ROOT / "tests" / "independent" / "pycose_verify.py"


def ensure_pycose() -> Path:
    """Install pycose into its private directory if it is not there yet."""
    marker = TARGET / ".installed"
    if not marker.exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--target",
                str(TARGET),
                *REQUIREMENTS,
            ],
            check=True,
        )
        marker.write_text(" ".join(REQUIREMENTS))
    return TARGET


def pycose_verify(jobs: list[tuple[bytes, bytes]]) -> list[dict[str, object]]:
    """Verify (public key, COSE_Sign1 message) pairs with pycose; one result dict per pair."""
    target = ensure_pycose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(target)
    stdin = "".join(json.dumps({"pub": pub.hex(), "msg": msg.hex()}) + "\n" for pub, msg in jobs)
    out = subprocess.run(
        [sys.executable, "-s", str(SCRIPT)],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=str(target),
    )
    return [json.loads(line) for line in out.stdout.splitlines()]

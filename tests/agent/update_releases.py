"""Release artefacts built from the current tree for the self-update tests: a good one, one
whose entry point crashes on start, and one that starts but never gets an ack (it connects to a
port where no broker listens)."""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
from pathlib import Path

from agent.update.manifest import Manifest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("agent", "protocol", "mqttc", "confschema", "keyfiles", "models")
_SKIP = re.compile(r"(__pycache__|\.pyc$)")


def build(out: Path, version: str, kind: str = "good") -> Path:
    """`out`/<version>.tar.gz: the agent's packages with __version__ = `version`; `kind`
    "crash" raises on start, "silent" points the link at a port nobody listens on."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for package in PACKAGES:
            for path in sorted((ROOT / package).rglob("*")):
                rel = path.relative_to(ROOT).as_posix()
                if path.is_dir() or _SKIP.search(rel):
                    continue
                data = path.read_bytes()
                if rel == "agent/__init__.py":
                    new = f'__version__ = "{version}"'.encode()
                    data = re.sub(rb'__version__ = "[^"]*"', new, data)
                if rel == "agent/cli.py" and kind == "crash":
                    main = b'\nif __name__ == "__main__":'
                    assert main in data
                    crash = b"\nraise SystemExit('this release crashes on start')\n"
                    data = data.replace(main, crash + main)
                if rel == "agent/link.py" and kind == "silent":
                    # the discard port: nobody answers, no report is ever acked
                    data = data.replace(b"mq.host, mq.port, keepalive", b"mq.host, 9, keepalive")
                info = tarfile.TarInfo(rel)
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
    path = out / f"{version}.tar.gz"
    path.write_bytes(buf.getvalue())
    return path


def manifest_for(path: Path, url: str, version: str, min_version: str = "0") -> Manifest:
    data = path.read_bytes()
    return Manifest(version, hashlib.sha256(data).digest(), url, len(data), min_version)

"""Small JSON files written whole: a temp file, fsync, then an atomic rename."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_json_atomic(path: Path, doc: object, durable: bool = True) -> None:
    """Write whole and rename into place; `durable` also fsyncs the file and the directory, so
    a power cut leaves either the old document or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as fh:
        fh.write(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        if durable:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)
    if durable:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_json(path: Path) -> object:
    """The document, or None when the file is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None

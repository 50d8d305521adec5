"""Fixtures of the model tests: the committed model, loaded with the real runtimes."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

from agent.scoring import Scorer

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "risk-v1.tflite"
META = ROOT / "models" / "risk-v1.json"
FIRMWARE_LIB = ROOT / "firmware" / "lib"


@pytest.fixture(scope="session")
def scorer() -> Scorer:
    return Scorer.load(MODEL)


@pytest.fixture(scope="session")
def firmware_scorer() -> ModuleType:
    """firmware/lib/scorer.py imported as on the board (its directory on the path)."""
    sys.path.insert(0, str(FIRMWARE_LIB))
    try:
        for name in ("scorer", "model_card"):
            sys.modules.pop(name, None)
        return importlib.import_module("scorer")
    finally:
        sys.path.remove(str(FIRMWARE_LIB))

"""firmware/lib/scorer.py and model_card.py stay inside what MicroPython offers."""

from __future__ import annotations

import ast

import pytest

from tests.model.conftest import FIRMWARE_LIB

ALLOWED_IMPORTS = {"array", "model_card", "micropython"}


@pytest.mark.parametrize("name", ["scorer.py", "model_card.py"])
def test_micropython_subset(name: str) -> None:
    tree = ast.parse((FIRMWARE_LIB / name).read_text())
    for node in ast.walk(tree):
        assert not isinstance(node, ast.JoinedStr), f"{name}:{node.lineno}: f-string"
        assert not isinstance(node, ast.AnnAssign | ast.Lambda), f"{name}:{node.lineno}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            )
            assert set(modules) <= ALLOWED_IMPORTS, f"{name}: imports {modules}"
        if isinstance(node, ast.FunctionDef):
            assert node.returns is None and all(a.annotation is None for a in node.args.args)
        if isinstance(node, ast.Constant) and isinstance(node.value, float):
            assert name == "model_card.py", f"{name}:{node.lineno}: float in the integer path"

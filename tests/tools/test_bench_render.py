"""tools.bench --render: docs/benchmarks.md rewritten from a saved run, without rerunning it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.bench.__main__ import main


def test_render_rewrites_the_markdown_from_saved_figures(tmp_path: Path) -> None:
    saved = {
        "machine": {"cpu": "Test CPU", "cores": 2, "system": "Linux", "python": "3.11.7"},
        "quick": False,
        "failed": [],
        "figures": [
            {"suite": "agent", "name": "idle RSS", "value": 53.2, "unit": "MB",
             "target": "<= 40", "peer": "floor 43.7 MB", "note": "", "meets": False},
            {"suite": "agent", "name": "drain", "value": 3048.0, "unit": "msg/s",
             "target": ">= 2000", "peer": None, "note": "acked", "meets": True},
        ],
    }  # fmt: skip
    source = tmp_path / "bench.json"
    source.write_text(json.dumps(saved))
    target = tmp_path / "bench.md"
    assert main(["--render", str(source), "--markdown", str(target)]) == 0
    text = target.read_text()
    assert "Machine: Test CPU, 2 cores, Linux, Python 3.11.7." in text
    assert "| agent | idle RSS | 53.2 | MB | <= 40 | **no** | floor 43.7 MB |" in text
    assert "| agent | drain | 3,048 | msg/s | >= 2000 | yes | acked |" in text
    assert "## Reading the figures" in text


def test_render_refuses_a_file_that_is_not_a_saved_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "bench.json"
    source.write_text('{"figures": []}')
    target = tmp_path / "bench.md"
    assert main(["--render", str(source), "--markdown", str(target)]) == 2
    assert "cannot render" in capsys.readouterr().err
    assert not target.exists()

"""`python -m tools.eval_risk SIGNAL`: signals found by module name, one JSON result each."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tools.eval_risk import __main__ as cli


def test_available__finds_sig_modules_by_file_name(tmp_path: Path) -> None:
    for name in ("sig_alpha.py", "sig_beta.py", "helper.py", "sig_gamma.txt"):
        (tmp_path / name).write_text("")
    assert cli.available(tmp_path) == ["alpha", "beta"]
    assert "calibration" in cli.available()


def test_help__lists_the_signals(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert re.search(r"available signals: .*calibration", out)


def test_unknown_signal__usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["no_such_signal", "--json"])
    assert exc.value.code == 2
    assert "no_such_signal" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"available: .*calibration"):
        cli.load("no_such_signal")


def test_calibration_quick__one_json_document(capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli.main(["calibration", "--quick", "--seed", "3", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert {"step_up_rate", "hold_rate", "impostor_detection", "met"} <= set(doc)
    assert rc == (0 if doc["met"] else 1)


def test_unknown_option__goes_to_the_module_main_or_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exc:  # sig_calibration's own parser refuses it
        cli.main(["calibration", "--no-such-option"])
    assert exc.value.code == 2
    assert "--no-such-option" in capsys.readouterr().err

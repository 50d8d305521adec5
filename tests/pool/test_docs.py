"""docs/credit-pool.md names every policy key, result code, command, event and account, and its
Quick start runs as written."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from cloud_bridge.pool.commands import COMMANDS
from cloud_bridge.pool.ledger import Account
from cloud_bridge.pool.policy import describe
from cloud_bridge.pool.results import Result
from tests.pool.test_cli import ROOT, cli, enroll_phone

DOC = (Path(__file__).resolve().parents[2] / "docs" / "credit-pool.md").read_text()
ENGINE = Path(__file__).resolve().parents[2] / "cloud_bridge" / "pool"


def test_every_policy_key_and_result_code_is_documented() -> None:
    missing = [k for k, _, _ in describe() if f"`{k}`" not in DOC]
    missing += [r.value for r in Result if f"`{r.value}`" not in DOC]
    missing += [a.value for a in Account if f"`{a.value}`" not in DOC]
    missing += [cls.__name__ for cls in COMMANDS.values() if f"`{cls.__name__}`" not in DOC]
    assert missing == []


def test_every_event_kind_is_documented() -> None:
    import re

    source = "".join(p.read_text() for p in ENGINE.glob("*.py"))
    kinds = set(re.findall(r'Event\(\s*"([a-z_]+)"', source))
    assert kinds and sorted(k for k in kinds if f"`{k}`" not in DOC) == []


def test_the_quick_start_runs_as_written(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every command of the Quick start, in order, on one database (--db added), from the
    checkout's root (the apply line names a file of it); carol's phone is enrolled first."""
    block = DOC.split("## Quick start", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    lines = [line for line in block.splitlines() if line.strip()]
    assert lines[0].startswith("cloud-bridge init ")  # the data directory: --db stands for it here
    lines = lines[1:]
    db = str(tmp_path / "quick.sqlite3")
    enroll_phone(db, "carol", enrolled_ms=1)
    monkeypatch.chdir(ROOT)
    assert len(lines) == 17
    for line in lines:
        argv = shlex.split(line, comments=True)  # as the shell reads it; then no redirection
        argv = argv[: argv.index(">")] if ">" in argv else argv
        assert argv[0] == "cloud-bridge"
        code, out, err = cli(capsys, *argv[1:], "--db", db)
        assert code == 0, (line, out, err)
    code, out, _ = cli(capsys, "pool", "show", "--user", "carol", "--json", "--db", db)
    assert code == 0 and json.loads(out)["limit_fen"] > 0

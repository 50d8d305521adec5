"""`cloud-bridge pool ...`: commands, exit codes, one-line errors, JSON, both databases."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from cloud_bridge.cli import main
from cloud_bridge.store import open_store, registry_repo
from cloud_bridge.store.registry_repo import Device
from protocol.replay import ReplayWindow

ROOT = Path(__file__).resolve().parents[2]


READS = frozenset({"show", "statement", "list", "history", "events", "audit", "policy"})


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`cloud-bridge ARGV` in-process. A pool change on a bare `--db` (no bridge data directory,
    so no key to publish with) gets `--no-publish`: these tests are about the pools; publishing,
    and the exit 2 without either, are tests/bridge/test_operator_published.py's."""
    if (
        len(argv) > 2
        and argv[0] == "pool"
        and argv[1] not in READS
        and "--db" in argv
        and "--data" not in argv
    ):
        argv = (*argv, "--no-publish")
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def db(store_url: str) -> str:
    return store_url


def enroll_phone(db: str, user: str, *, enrolled_ms: int, status: str = "active") -> None:
    """A device row for `user`, as enrollment writes it (the signed record is the registry's
    business, tested in tests/bridge; apply reads only who has which devices since when)."""
    empty = ReplayWindow().to_bytes()
    with open_store(db) as store, store.transaction() as tx:
        device = Device(f"{user}-phone", "f1", user, "phone", status, {}, {}, enrolled_ms, 1)
        registry_repo.insert_device(tx, device, empty, empty)


def test_a_pool_lifecycle_from_the_command_line(
    capsys: pytest.CaptureFixture[str], db: str
) -> None:
    assert cli(capsys, "pool", "open", "--user", "alice", "--limit", "100_000", "--db", db)[0] == 0
    draw = ("pool", "draw", "--user", "alice", "--amount", "60000")
    code, out, _ = cli(capsys, *draw, "--key", "k1", "--db", db, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["result"] == "ok" and doc["available_fen"] == 40_000
    assert (doc["limit_fen"], doc["outstanding_fen"], doc["held_fen"]) == (100_000, 60_000, 0)
    code, out, _ = cli(capsys, *draw, "--key", "k1", "--db", db, "--json")
    assert code == 0 and json.loads(out)["replayed"] is True
    code, out, _ = cli(capsys, *draw, "--db", db)
    assert code == 1 and out.startswith("exceeds_credit: draw alice")
    hold = ("pool", "hold", "--user", "alice", "--key", "order-1", "--amount", "30000")
    assert cli(capsys, *hold, "--db", db)[0] == 0
    confirm = ("pool", "confirm", "--user", "alice", "--hold", "order-1", "--amount", "10000")
    assert cli(capsys, *confirm, "--db", db)[0] == 0
    assert cli(capsys, "pool", "repay", "--user", "alice", "--amount", "70000", "--db", db)[0] == 0
    freeze = ("pool", "freeze", "--user", "alice", "--reason", "fraud")
    assert cli(capsys, *freeze, "--db", db)[0] == 0
    code, out, _ = cli(capsys, "pool", "show", "--user", "alice", "--json", "--db", db)
    view = json.loads(out)
    assert (view["status"], view["outstanding_fen"], view["version"]) == ("frozen", 0, 6)
    code, out, _ = cli(capsys, "pool", "history", "--user", "alice", "--since", "4", "--db", db)
    assert [line.split()[2] for line in out.splitlines()] == ["repaid", "frozen"]
    code, out, _ = cli(capsys, "pool", "audit", "--db", db)
    assert code == 0 and "audited 1 pools: clean" in out
    code, out, _ = cli(capsys, "pool", "list", "--db", db)
    assert out.startswith("alice [frozen] limit 100000 fen")
    code, out, _ = cli(capsys, "pool", "statement", "--user", "alice", "--json", "--db", db)
    doc = json.loads(out)
    assert code == 0 and doc["outstanding_fen"] == 0 and doc["limit_fen"] == 100_000
    hold = ("pool", "hold", "--user", "alice", "--hold", "h2", "--amount", "500")
    assert cli(capsys, *hold, "--db", db)[0] == 1  # frozen: a refusal is exit 1
    void = ("pool", "void", "--user", "alice", "--hold", "h2", "--json")
    code, out, _ = cli(capsys, *void, "--db", db)
    assert code == 1 and json.loads(out)["result"] == "hold_not_found"


@pytest.mark.parametrize(
    ("argv", "code", "says"),
    [
        (["draw", "--user", "alice", "--amount", "12.50"], 2, "1 yuan = 100 fen"),
        (["draw", "--user", "alice", "--amount", "-5"], 2, "error"),
        (["draw", "--user", "bad user", "--amount", "100"], 2, "user must be"),
        (["draw", "--amount", "100"], 2, "--user"),
        (["open", "--user", "alice"], 2, "--limit"),
        (["life-stage", "--user", "alice", "--event", "divorce"], 2, "invalid choice"),
        (["frobnicate"], 2, "invalid choice"),
        (["show", "--user", "nobody"], 1, "no pool for user 'nobody'"),
        (
            ["show", "--user", "alice", "--db", "postgresql://nobody@127.0.0.1:1/x"],
            3,
            "cannot connect",
        ),
        (
            ["show", "--user", "alice", "--policy", "/nonexistent.toml"],
            2,
            "cannot read policy file",
        ),
    ],
)
def test_errors_are_one_line_with_a_non_zero_exit(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], code: int, says: str
) -> None:
    db = ["--db", str(tmp_path / "x.sqlite3")] if "--db" not in argv else []
    got, _, err = cli(capsys, "pool", *argv, *db)
    assert got == code
    assert says in err and len(err.strip().splitlines()) == 1, err


def test_policy_prints_loadable_toml_and_help_mentions_fen(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = cli(capsys, "pool", "policy")
    assert code == 0 and "after_on_time_cycles = 6" in out
    (tmp_path / "p.toml").write_text(
        out.replace("after_on_time_cycles = 6", "after_on_time_cycles = 3")
    )
    code, out, _ = cli(capsys, "pool", "policy", "--policy", str(tmp_path / "p.toml"))
    assert "after_on_time_cycles = 3" in out
    code, out, _ = cli(capsys, "pool", "--help")
    assert code == 0 and "1 yuan = 100 fen" in out


def test_the_installed_console_script_runs(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "cloud-bridge"
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "cloud_bridge.cli"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [*argv, "pool", "open", "--user", "bob", "--limit", "20000", "--no-publish"],
        cwd=tmp_path, capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "var" / "bridge" / "bridge.sqlite3").exists()  # the default --db


def _examples(help_text: str) -> list[list[str]]:
    """The command lines under "examples:" in a help text, without the program name, the
    comment and the shell redirection."""
    text = help_text.split("examples:\n", 1)[1]
    lines = [line.split("  #")[0].split(" > ")[0] for line in text.splitlines() if line.strip()]
    return [shlex.split(line)[1:] for line in lines]


def test_every_example_in_the_help_runs(
    capsys: pytest.CaptureFixture[str], db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)  # the apply example names a file of the checkout
    enroll_phone(db, "carol", enrolled_ms=1)  # as `cloud-bridge devices enroll` would
    code, shown, _ = cli(capsys, "pool", "--help")
    examples = _examples(shown)
    assert code == 0 and len(examples) == 14 and all(argv[0] == "pool" for argv in examples)
    # In the order shown, on one database (--db replaced or added), with the default policy.
    for argv in examples:
        if "--db" in argv:
            at = argv.index("--db")
            argv = argv[:at] + argv[at + 2 :]
        code, out, err = cli(capsys, *argv, "--db", db)
        assert code == 0, (argv, out, err)
    code, out, _ = cli(capsys, "pool", "show", "--user", "alice", "--json", "--db", db)
    view = json.loads(out)
    # 1,200 + 6,000 (plan) + 800 and 9,000 (emergencies, the second all it asked as the day's
    # budget and the credit allow it) + 300 (confirmed hold) + 6,000 (a purchase confirmed into
    # a plan) - 500 repaid, in yuan.
    assert (view["limit_fen"], view["outstanding_fen"]) == (5_000_000, 2_280_000)
    code, out, _ = cli(capsys, "pool", "show", "--user", "carol", "--json", "--db", db)
    assert code == 0 and json.loads(out)["limit_fen"] > 0  # the automated approval opened it


def test_a_merchant_reports_turnover_from_the_command_line(
    capsys: pytest.CaptureFixture[str], db: str
) -> None:
    import time

    day = int(time.time() // 86_400) - 1  # yesterday: inside the window on any clock tick
    assert cli(capsys, "pool", "open", "--user", "shop", "--limit", "10000", "--db", db)[0] == 0
    report = ("pool", "turnover", "--user", "shop", "--day")
    code, out, _ = cli(capsys, *report, str(day), "--amount", "0", "--db", db, "--json")
    assert code == 0 and json.loads(out)["events"][0]["data"] == {"day": day, "turnover_fen": 0}
    code, out, _ = cli(capsys, *report, str(day), "--amount", "5", "--db", db)
    assert code == 1 and out.startswith("turnover_already_reported: turnover shop")

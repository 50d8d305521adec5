"""`cloud-bridge pool apply`: the decision, the pool it opens, device signals from the store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cloud_bridge.pool.scorecard import DEFAULT_SCORECARD
from tests.pool.test_cli import ROOT, cli, enroll_phone

GOOD = ROOT / "docs" / "examples" / "applicant.json"
HOLDOUT = json.loads(DEFAULT_SCORECARD.with_suffix(".holdout.json").read_text())


def weak_applicant(tmp_path: Path) -> Path:
    """The held-out applicant the trainer scored lowest: a certain decline."""
    at = HOLDOUT["trainer_score"].index(min(HOLDOUT["trainer_score"]))
    path = tmp_path / "weak.json"
    path.write_text(json.dumps(dict(zip(HOLDOUT["columns"], HOLDOUT["rows"][at], strict=True))))
    return path


def apply(capsys: pytest.CaptureFixture[str], db: str, user: str, path: Path) -> tuple[int, Any]:
    code, out, err = cli(capsys, "pool", "apply", "--user", user, "--applicant", str(path),
                         "--db", db, "--json")  # fmt: skip
    return code, json.loads(out) if out else err


@pytest.fixture
def db(store_url: str) -> str:
    return store_url


def test_a_user_with_a_phone_and_a_good_application_is_approved_and_the_pool_opened(
    capsys: pytest.CaptureFixture[str], db: str
) -> None:
    enroll_phone(db, "dora", enrolled_ms=1)  # enrolled long ago: a trusted device
    code, doc = apply(capsys, db, "dora", GOOD)
    decision = doc["decision"]
    assert code == 0 and decision["outcome"] == "approve" and doc["result"] == "ok"
    assert decision["adjusted_pd_bps"] == decision["pd_bps"] - 100  # one trusted device
    view = doc["outcome"]["view"]
    assert (view["limit_fen"], view["rate_bps"]) == (decision["limit_fen"], decision["rate_bps"])
    assert 10_000 <= view["limit_fen"] <= 5_000_000 and view["limit_fen"] % 10_000 == 0
    again_code, again = apply(capsys, db, "dora", GOOD)  # the same application: replayed
    assert again_code == 0 and again["outcome"]["replayed"] is True


def test_no_device_refers_and_opens_nothing(capsys: pytest.CaptureFixture[str], db: str) -> None:
    code, doc = apply(capsys, db, "erin", GOOD)
    assert code == 1 and doc["decision"]["outcome"] == "refer" and doc["result"] is None
    assert doc["decision"]["reasons"][0] == "no_enrolled_device"
    assert cli(capsys, "pool", "show", "--user", "erin", "--db", db)[0] == 1  # no pool


def test_a_decline_gives_its_top_reasons(
    capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path
) -> None:
    enroll_phone(db, "finn", enrolled_ms=1)
    code, out, _ = cli(capsys, "pool", "apply", "--user", "finn", "--applicant",
                       str(weak_applicant(tmp_path)), "--db", db)  # fmt: skip
    assert code == 1 and out.startswith("decline: finn")
    reasons = out.split("reasons: ")[1].split(", ")
    assert reasons[0] == "high_pd" and len(reasons) == 5  # the rule, then 4 scorecard reasons


def test_a_revoked_device_refers(capsys: pytest.CaptureFixture[str], db: str) -> None:
    enroll_phone(db, "gus", enrolled_ms=1, status="revoked")
    code, doc = apply(capsys, db, "gus", GOOD)
    assert code == 1 and doc["decision"]["reasons"][:2] == ["no_enrolled_device", "device_revoked"]


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("[1, 2]", "must hold a JSON object"),
        ("{", "is not JSON"),
        ('{"purpose": "yacht"}', "not a known category"),
        ('{"shoe_size": 44}', "unknown applicant attributes"),
    ],
)
def test_a_bad_applicant_file_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path, content: str, says: str
) -> None:
    path = tmp_path / "a.json"
    path.write_text(content)
    code, err = apply(capsys, db, "hank", path)
    assert code == 2 and says in err and len(err.strip().splitlines()) == 1

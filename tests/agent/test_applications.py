"""`edge-agent apply`: the applicant file is checked as the wire takes it, queued whole in the
spool, and refused on a device that is not a phone (the bridge would refuse it too). The
running agent sending it to the bridge: tests/bridge/test_application_e2e.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.applications import SPOOL, ApplicationSpool
from tests.agent.harness import ROOT, cli, provision

GOOD = ROOT / "docs" / "examples" / "applicant.json"
BRIDGE_KEY = "00" * 32


@pytest.fixture(scope="module")
def phone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return provision(
        tmp_path_factory.mktemp("phone"), "phone-1", "phone", "mqtt://x", BRIDGE_KEY
    ).config


def spooled(config: Path) -> list[Path]:
    return sorted((config.parent / SPOOL).glob("*.json"))  # data_dir: the config's directory


def test_apply_queues_the_applicant_for_the_running_agent(phone: Path) -> None:
    before = spooled(phone)
    run = cli("apply", "--config", str(phone), "--applicant", str(GOOD))
    assert run.returncode == 0 and "application queued" in run.stdout
    (new,) = set(spooled(phone)) - set(before)
    assert json.loads(new.read_text()) == json.loads(GOOD.read_text())


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("[1, 2]", "must hold a JSON object"),
        ("{", "is not JSON"),
        ('{"age_in_years": 40.5}', "integers (no decimals)"),
        ('{"age in years": 40}', "keys must be ids"),
        ('{"housing": true}', "integers or text"),
    ],
)
def test_a_bad_applicant_file_is_refused_and_nothing_is_queued(
    phone: Path, tmp_path: Path, content: str, says: str
) -> None:
    path = tmp_path / "applicant.json"
    path.write_text(content)
    before = spooled(phone)
    run = cli("apply", "--config", str(phone), "--applicant", str(path), check=False)
    assert run.returncode == 2 and says in run.stderr, run.stderr
    assert spooled(phone) == before


def test_only_a_phone_applies(tmp_path: Path) -> None:
    fridge = provision(tmp_path, "fridge-1", "fridge", "mqtt://x", BRIDGE_KEY).config
    run = cli("apply", "--config", str(fridge), "--applicant", str(GOOD), check=False)
    assert run.returncode == 2 and "a fridge does not apply" in run.stderr
    assert spooled(fridge) == []


def test_the_spool_drops_an_unreadable_file_and_keeps_the_rest(tmp_path: Path) -> None:
    spool = ApplicationSpool(tmp_path / SPOOL)
    good = spool.queue({"housing": "own", "age_in_years": 40})
    bad = spool.directory / "0-bad.json"
    bad.write_text('{"age_in_years": 1.5}')
    assert spool.take() == [(good, {"housing": "own", "age_in_years": 40})]
    assert not bad.exists()
    spool.remove([good.name])
    assert spool.take() == []

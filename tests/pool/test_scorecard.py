"""The applicant scorecard: the bridge's pure scorer against the trainer, and its bad input."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from cloud_bridge.pool.errors import InvalidApplicant, ScorecardError
from cloud_bridge.pool.scorecard import (
    DEFAULT_SCORECARD,
    load_scorecard,
    scorecard_from_json,
)

ARTIFACT = json.loads(DEFAULT_SCORECARD.read_text())
HOLDOUT = json.loads(DEFAULT_SCORECARD.with_suffix(".holdout.json").read_text())
CARD = load_scorecard()


def applicants() -> list[dict[str, Any]]:
    return [dict(zip(HOLDOUT["columns"], row, strict=True)) for row in HOLDOUT["rows"]]


def auc(bad: list[int], risk: list[int]) -> float:
    """Probability that a random bad applicant is riskier than a random good one (ties half)."""
    bads = [r for r, b in zip(risk, bad, strict=True) if b]
    goods = [r for r, b in zip(risk, bad, strict=True) if not b]
    wins = sum((x > y) + 0.5 * (x == y) for x in bads for y in goods)
    return wins / (len(bads) * len(goods))


def test_the_bridge_scores_every_held_out_applicant_as_the_trainer_did() -> None:
    got = [CARD.score(a).points for a in applicants()]
    assert got == HOLDOUT["trainer_score"]


def test_held_out_auc_meets_the_goal_of_0_78() -> None:
    risk = [CARD.score(a).pd_bps for a in applicants()]
    assert len(risk) == 300 and sum(HOLDOUT["bad"]) == 90
    assert auc(HOLDOUT["bad"], risk) >= 0.78


def test_calibrated_pd_tracks_the_bad_rate_of_the_held_out_applicants() -> None:
    pds = [CARD.score(a).pd_bps for a in applicants()]
    mean_pd = sum(pds) / len(pds)
    assert 2_400 <= mean_pd <= 3_600  # the held-out bad rate is 3,000 bps
    low = [b for p, b in zip(pds, HOLDOUT["bad"], strict=True) if p < 1_500]
    high = [b for p, b in zip(pds, HOLDOUT["bad"], strict=True) if p >= 3_500]
    assert sum(low) / len(low) < 0.15 < 0.4 < sum(high) / len(high)


def test_protected_attributes_are_not_in_the_scorecard() -> None:
    assert {"personal_status_and_sex", "foreign_worker"} & CARD.names == set()


def test_reasons_are_ranked_by_points_lost_and_a_perfect_applicant_has_none() -> None:
    card = scorecard_from_json(
        {
            "name": "tiny",
            "calibration": {"intercept": 2.0, "slope": -0.05},
            "features": [
                {
                    "name": "months",
                    "kind": "numerical",
                    "splits": [12.5],
                    "points": [30, 10],
                    "missing_points": 15,
                },
                {
                    "name": "home",
                    "kind": "categorical",
                    "bins": [["own"], ["rent", "free"]],
                    "points": [20, 15],
                    "missing_points": 0,
                },
            ],
        }
    )
    s = card.score({"months": 24, "home": "rent"})
    assert (s.points, s.reasons, s.missing) == (25, ("months", "home"), ())
    assert s.pd_bps == round(10_000 / (1 + 2.718281828459045 ** -(2.0 - 0.05 * 25)))
    best = card.score({"months": 12, "home": "own"})
    assert (best.points, best.reasons) == (50, ())
    blank = card.score({"home": "own"})
    assert (blank.points, blank.missing, blank.reasons) == (35, ("months",), ("months",))
    assert card.score({"months": 12.5, "home": "own"}).points == 30  # x == split: upper bin


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"duration_in_month": "long"}, "must be a number"),
        ({"duration_in_month": True}, "must be a number"),
        ({"duration_in_month": float("nan")}, "finite"),
        ({"purpose": "yacht"}, "not a known category; use one of"),
        ({"purpose": 3}, "not a known category"),
        ({"shoe_size": 44}, "unknown applicant attributes"),
    ],
)
def test_bad_applicants_are_refused_with_a_message_naming_the_attribute(
    change: dict[str, Any], message: str
) -> None:
    applicant = {**applicants()[0], **change}
    with pytest.raises(InvalidApplicant, match=message):
        CARD.score(applicant)


def _broken(edit: Any) -> dict[str, Any]:
    data = copy.deepcopy(ARTIFACT)
    edit(data)
    return data


@pytest.mark.parametrize(
    "data",
    [
        _broken(lambda d: d.pop("calibration")),
        _broken(lambda d: d["features"][1].update(splits=[9.0, 1.0, 20.0, 30.0, 40.0])),
        _broken(lambda d: d["features"][0]["points"].pop()),
        _broken(lambda d: d["features"][0].update(kind="ordinal")),
        _broken(lambda d: d["calibration"].update(slope=0.1)),
        _broken(lambda d: d["features"].append(d["features"][0])),
        _broken(lambda d: d.update(features=[])),
    ],
)
def test_a_malformed_artifact_fails_at_load(data: dict[str, Any]) -> None:
    with pytest.raises(ScorecardError):
        scorecard_from_json(data)


def test_an_unreadable_artifact_is_a_scorecard_error(tmp_path: Path) -> None:
    with pytest.raises(ScorecardError, match="cannot read"):
        load_scorecard(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ScorecardError, match="not JSON"):
        load_scorecard(tmp_path / "bad.json")

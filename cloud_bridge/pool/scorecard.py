"""The applicant scorecard: points per bin, read from a JSON artifact, scored by a pure function.

The artifact (models/scorecard-v1.json, written by `python -m tools.train_scorecard`) lists each
attribute's bins and the points each bin earns; the score is the sum, and the probability of
default (PD) comes from the calibration line fitted on out-of-fold scores:
PD = 1 / (1 + exp(-(intercept + slope * score))). Nothing here needs the training libraries.

Reasons are ranked by the points an applicant lost on an attribute: the gap between the best bin
of that attribute and the applicant's bin. The attribute's name is the reason code (stable, as
long as the artifact's attribute names are).

A malformed artifact is a `ScorecardError` when it is loaded; an applicant with a wrong type or
a category the scorecard never saw is an `InvalidApplicant` that names the attribute and says
which values it takes. A missing attribute scores its "missing" bin and is reported as missing.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud_bridge.pool.errors import InvalidApplicant, ScorecardError

DEFAULT_SCORECARD = Path(__file__).resolve().parents[2] / "models" / "scorecard-v1.json"
"""The committed artifact, in a checkout (an install passes its own path)."""

Value = int | float | str | None


@dataclass(frozen=True)
class Feature:
    """One attribute: numerical bins cut at `splits` (bin i holds splits[i-1] <= x < splits[i],
    as optbinning cuts them) or categorical bins (each a set of categories)."""

    name: str
    points: tuple[int, ...]
    missing_points: int
    splits: tuple[float, ...] = ()
    categories: Mapping[str, int] | None = None  # category -> bin index; None: numerical

    @property
    def best_points(self) -> int:
        return max(self.points)

    def bin_of(self, value: Value) -> int | None:
        """The bin index of `value`, None for a missing value; InvalidApplicant if it fits none."""
        if value is None:
            return None
        if self.categories is None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidApplicant(f"applicant {self.name!r} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise InvalidApplicant(f"applicant {self.name!r} must be finite, got {value!r}")
            return bisect.bisect_right(self.splits, value)
        if not isinstance(value, str) or value not in self.categories:
            known = ", ".join(repr(c) for c in sorted(self.categories))
            raise InvalidApplicant(
                f"applicant {self.name!r} = {value!r} is not a known category; use one of {known}"
            )
        return self.categories[value]

    def points_of(self, value: Value) -> int:
        index = self.bin_of(value)
        return self.missing_points if index is None else self.points[index]


@dataclass(frozen=True)
class Score:
    """An applicant's score: total points, PD in basis points, reasons ranked by points lost."""

    points: int
    pd_bps: int
    reasons: tuple[str, ...]
    missing: tuple[str, ...]


@dataclass(frozen=True)
class Scorecard:
    name: str
    features: tuple[Feature, ...]
    intercept: float
    slope: float

    def __post_init__(self) -> None:
        if not self.features:
            raise ScorecardError("a scorecard needs at least one attribute")
        if self.slope >= 0:
            raise ScorecardError("calibration slope must be negative: more points, less risk")

    @property
    def names(self) -> frozenset[str]:
        return frozenset(f.name for f in self.features)

    def pd_bps(self, points: int) -> int:
        """The calibrated probability of default of a score, in basis points (0..10000)."""
        z = self.intercept + self.slope * points
        pd = 1 / (1 + math.exp(-z)) if z > -700 else 0.0
        return round(pd * 10_000)

    def score(self, applicant: Mapping[str, Value]) -> Score:
        """Score one applicant (attribute name -> value); unknown attribute names are refused."""
        unknown = set(applicant) - self.names
        if unknown:
            raise InvalidApplicant(
                f"unknown applicant attributes {sorted(unknown)}; the scorecard takes "
                f"{', '.join(sorted(self.names))}"
            )
        total, lost, missing = 0, [], []
        for feature in self.features:
            value = applicant.get(feature.name)
            if value is None:
                missing.append(feature.name)
            got = feature.points_of(value)
            total += got
            if got < feature.best_points:
                lost.append((feature.best_points - got, feature.name))
        lost.sort(key=lambda item: (-item[0], item[1]))
        return Score(
            points=total,
            pd_bps=self.pd_bps(total),
            reasons=tuple(name for _, name in lost),
            missing=tuple(missing),
        )


def _feature(data: Mapping[str, Any]) -> Feature:
    name = data["name"]
    points = tuple(int(p) for p in data["points"])
    missing = int(data["missing_points"])
    if data["kind"] == "numerical":
        splits = tuple(float(s) for s in data["splits"])
        if len(points) != len(splits) + 1 or list(splits) != sorted(set(splits)):
            raise ScorecardError(f"{name}: {len(splits)} ascending splits need one more bin")
        return Feature(name, points, missing, splits=splits)
    if data["kind"] == "categorical":
        bins = data["bins"]
        if len(points) != len(bins):
            raise ScorecardError(f"{name}: {len(bins)} category bins but {len(points)} points")
        categories = {str(cat): i for i, group in enumerate(bins) for cat in group}
        if len(categories) != sum(len(g) for g in bins):
            raise ScorecardError(f"{name}: a category is in two bins")
        return Feature(name, points, missing, categories=categories)
    raise ScorecardError(f"{name}: kind must be numerical or categorical, got {data['kind']!r}")


def scorecard_from_json(data: Mapping[str, Any]) -> Scorecard:
    """A Scorecard from the artifact's parsed JSON; ScorecardError names what is wrong."""
    try:
        features = tuple(_feature(f) for f in data["features"])
        calibration = data["calibration"]
        card = Scorecard(
            name=str(data["name"]),
            features=features,
            intercept=float(calibration["intercept"]),
            slope=float(calibration["slope"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ScorecardError(f"scorecard artifact is malformed: {exc!r}") from exc
    if len(card.names) != len(features):
        raise ScorecardError("scorecard attribute names must be unique")
    return card


def load_scorecard(path: str | Path = DEFAULT_SCORECARD) -> Scorecard:
    """The scorecard artifact at `path` (default: the committed models/scorecard-v1.json)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScorecardError(f"cannot read scorecard {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ScorecardError(f"scorecard {path} is not JSON: {exc}") from exc
    return scorecard_from_json(data)

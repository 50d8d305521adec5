"""From a capture to a score: fingerprint it, compare with the enrolled baseline, run the model.

The one place where the agent meets agent.features and agent.scoring, so the runtime, the
commands (model update) and provisioning share it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent import features
from agent.features import Capture, Fingerprint
from agent.scoring import Scorer


@dataclass(frozen=True)
class Assessment:
    risk_pm: int
    input_q: bytes
    fingerprint: dict[int, int]
    model_id: str
    model_sha256: bytes


class Assessor:
    def __init__(self, scorer: Scorer, baseline: Fingerprint) -> None:
        self.scorer = scorer
        self.baseline = baseline

    @classmethod
    def load(cls, model: Path, meta: Path | None, baseline_wire: dict[int, int]) -> Assessor:
        return cls(Scorer.load(model, meta), Fingerprint.from_wire(baseline_wire))

    @property
    def model_id(self) -> str:
        return self.scorer.model_id

    @property
    def model_sha256(self) -> bytes:
        return self.scorer.model_sha256

    @property
    def baseline_wire(self) -> dict[int, int]:
        return self.baseline.to_wire()

    def assess(self, capture: Capture) -> Assessment:
        current = features.extract(capture)
        score = self.scorer.score_fingerprint(current, self.baseline)
        return Assessment(
            risk_pm=score.risk_pm,
            input_q=score.input_q,
            fingerprint=current.to_wire(),
            model_id=score.model_id,
            model_sha256=score.model_sha256,
        )

    def with_model(self, model: Path, meta: Path | None) -> Assessor:
        """The same baseline with another model (raises if the model does not load)."""
        return Assessor(Scorer.load(model, meta), self.baseline)

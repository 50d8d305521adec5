"""The bridge's own score of a report: never trust the device's.

A report carries the session's fingerprint, the model input the device made from it (`features`,
int8) and the device's score (`risk_pm`). The bridge enrolled the device's baseline itself, so
it rebuilds the model input from the fingerprint and that baseline, runs the same model, and
decides on its own output. The device's two claims are then checked against it:

    features_mismatch   the device's model input is not the one its fingerprint gives
                        (more than FEATURE_TOLERANCE in any element: the ESP32 computes in
                        32-bit floats, so one step of rounding is allowed)
    score_mismatch      the device's risk_pm is not what the model gives on the device's own
                        input (one output step allowed: tflite-runtime and TFLite Micro differ
                        by one on about 1 input in 1,000)
    unknown_model       the bridge does not have the model the device says it ran (a full
                        SHA-256 names it alone; a shorter prefix, as ESP32 boards send, with
                        the report's model_id)
    bad_fingerprint     the fingerprint is missing or malformed

A compromised board that reports risk_pm = 0 for an impostor's session is caught twice: its
score does not match its input, and the decision uses the server's score anyway. A board that
also forges a benign `features` is caught by the first check; one that forges the fingerprint
itself is the fingerprint signal's business (cloud_bridge.risk.fingerprint).

`ServerScorer` holds the models by SHA-256 and is deterministic; the TFLite interpreter is the
only non-pure part.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from agent.errors import AgentError
from agent.scoring import Scorer
from cloud_bridge.risk.fingerprint import deltas, parse
from protocol.messages import MODEL_SHA256_PREFIX

FEATURE_TOLERANCE = 1  # int8 steps per element
SCORE_TOLERANCE = 1  # output q steps


class Tamper(enum.StrEnum):
    FEATURES_MISMATCH = "features_mismatch"
    SCORE_MISMATCH = "score_mismatch"
    UNKNOWN_MODEL = "unknown_model"
    BAD_FINGERPRINT = "bad_fingerprint"


@dataclass(frozen=True, slots=True)
class ServerScore:
    """The bridge's score of one report (`output_q` None when it could not score) and what the
    device's own claims got wrong."""

    output_q: int | None
    risk_pm: int | None
    tamper: tuple[Tamper, ...]


class ServerScorer:
    """The models the bridge can score with, by SHA-256 of the .tflite file."""

    def __init__(self, scorers: Iterable[Scorer]) -> None:
        """ValueError if two models share an id and their first MODEL_SHA256_PREFIX bytes: a
        device's short form would then name either, and the first loaded would win silently."""
        self._by_sha: dict[bytes, Scorer] = {s.model_sha256: s for s in scorers}
        short: dict[tuple[str, bytes], bytes] = {}
        for sha, s in self._by_sha.items():
            other = short.setdefault((s.model_id, sha[:MODEL_SHA256_PREFIX]), sha)
            if other != sha:
                raise ValueError(
                    f"models {other.hex()} and {sha.hex()} share the id {s.model_id} and their "
                    f"first {MODEL_SHA256_PREFIX} bytes: give one another model_id"
                )

    @classmethod
    def load(cls, paths: Iterable[Path]) -> ServerScorer:
        return cls(Scorer.load(p) for p in paths)

    @property
    def model_ids(self) -> tuple[str, ...]:
        return tuple(sorted(s.model_id for s in self._by_sha.values()))

    def sha256_of(self, model_id: str) -> bytes | None:
        """The SHA-256 of the loaded model with this id (None: none loaded)."""
        return next((sha for sha, s in self._by_sha.items() if s.model_id == model_id), None)

    def find(self, model_id: str, model_sha256: bytes) -> Scorer | None:
        """The model a report names: by its whole SHA-256, or by model_id and a prefix of the
        SHA-256 (protocol.messages.MODEL_SHA256_PREFIX bytes or more)."""
        sha = bytes(model_sha256)
        if len(sha) == 32:
            return self._by_sha.get(sha)
        for full, scorer in self._by_sha.items():
            if scorer.model_id == model_id and full.startswith(sha):
                return scorer
        return None

    def score(
        self,
        model_id: str,
        model_sha256: bytes,
        fingerprint: Mapping[int, int],
        features: bytes,
        risk_pm: int,
        baseline: Mapping[int, int],
    ) -> ServerScore:
        scorer = self.find(model_id, model_sha256)
        if scorer is None:
            return ServerScore(None, None, (Tamper.UNKNOWN_MODEL,))
        try:
            current = parse(fingerprint)
            base = parse(baseline)
            mine = scorer.score(scorer.normalisation.apply(deltas(current, base)))  # model_input
        except (AgentError, ValueError, OverflowError):
            return ServerScore(None, None, (Tamper.BAD_FINGERPRINT,))
        tamper: list[Tamper] = []
        same = features == mine.input_q  # the usual case: the device's input is the bridge's
        if not same and not _close(features, mine.input_q):
            tamper.append(Tamper.FEATURES_MISMATCH)
        if len(features) == scorer.n_inputs:
            # The model is deterministic: on the bridge's own input it gave mine.output_q.
            claimed_q = mine.output_q if same else scorer.score_q(bytes(features))
            lo = scorer.risk_pm_from_q(max(-128, claimed_q - SCORE_TOLERANCE))
            hi = scorer.risk_pm_from_q(min(127, claimed_q + SCORE_TOLERANCE))
            if not lo <= risk_pm <= hi:
                tamper.append(Tamper.SCORE_MISMATCH)
        return ServerScore(mine.output_q, mine.risk_pm, tuple(tamper))


def _close(claimed: bytes, mine: bytes) -> bool:
    if len(claimed) != len(mine):
        return False
    signed = [b - 256 if b > 127 else b for b in claimed]
    ours = [b - 256 if b > 127 else b for b in mine]
    return all(abs(a - b) <= FEATURE_TOLERANCE for a, b in zip(signed, ours, strict=True))

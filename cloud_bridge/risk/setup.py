"""The bridge's risk set-up from bridge.toml: the model it scores reports with and the per-kind
thresholds of that model (its calibration file, then the [risk] kinds overrides). The only I/O
of the risk package, run once at start."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent.config import REPO_MODEL
from agent.errors import AgentError
from cloud_bridge.config import BridgeConfig
from cloud_bridge.risk import calibration
from cloud_bridge.risk.calibration import CalibrationError, KindThresholds
from cloud_bridge.risk.server_score import ServerScorer
from cloud_bridge.risk.verdict import Level, Thresholds


@dataclass(frozen=True)
class RiskSetup:
    scorer: ServerScorer
    thresholds: Thresholds
    calibration: calibration.Calibration


def model_path(cfg: BridgeConfig) -> Path:
    return cfg.risk_model or REPO_MODEL


def calibration_path(cfg: BridgeConfig) -> Path:
    return cfg.risk_calibration or model_path(cfg).with_suffix(".calibration.json")


def thresholds(cfg: BridgeConfig, cal: calibration.Calibration) -> Thresholds:
    """The calibration's per-kind thresholds with bridge.toml's overrides on top."""
    kinds = dict(cal.kinds)
    for kind, step_up_q, hold_q in cfg.risk_kinds:
        kinds[kind] = KindThresholds(step_up_q, hold_q)
    return Thresholds(
        kinds=kinds,
        freeze_after=cfg.freeze_after,
        mismatch=Level(cfg.risk_mismatch),
        unscored=Level(cfg.risk_unscored),
        signals=cfg.risk_signals,
    )


def load(cfg: BridgeConfig) -> RiskSetup:
    """Load the model and its calibration; CalibrationError (a BridgeError) names the file and
    the fix when either is missing or they do not belong together."""
    path = model_path(cfg)
    try:
        scorer = ServerScorer.load([path])
    except (AgentError, OSError, ValueError) as exc:
        raise CalibrationError(
            f"[risk] model = {str(path)!r} cannot be loaded: {exc}; give the path of a .tflite "
            "model with its .json metadata beside it"
        ) from exc
    cal_path = calibration_path(cfg)
    cal = calibration.load(cal_path)
    sha = scorer.sha256_of(cal.model_id)
    if sha is None or sha.hex() != cal.model_sha256:
        raise CalibrationError(
            f"{cal_path} calibrates {cal.model_id} {cal.model_sha256[:12]}, not the model "
            f"{path}; recalibrate with `python -m tools.eval_risk calibration --write --model "
            f"{path}` or set [risk] calibration"
        )
    return RiskSetup(scorer, thresholds(cfg, cal), cal)

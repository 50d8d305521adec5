"""The server score on live traffic: rescore every report a bridge logged and measure it.

    python -m tools.eval_risk.live --db var/bridge/bridge.sqlite3 [--json] [--write PATH]

Reads the bridge's event log and device registry (SQLite path or postgresql:// DSN), rescores
each logged report exactly as the bridge does (`cloud_bridge.risk.server_score`: the report's
fingerprint against the enrolled baseline, the same model) and measures, per device kind:

    genuine step-up and hold rates   reports at or above the kind's thresholds (the bridge's
                                     calibration file, or --calibration); goals 1 % and 0.1 %
    tamper                           reports whose features or risk_pm the model contradicts
    cross-device impostor detection  every other device's reports of the same kind scored
                                     against this device's baseline (a session that is not this
                                     device's own), flagged at the step-up threshold
    decision                         the bridge's whole verdict replayed per device in sequence
                                     order (`decide`): the server score with the device's
                                     re-centred thresholds, the per-device signals (clock,
                                     clone, fingerprint drift) and their points, as
                                     `cloud_bridge.judge` runs them; step-up and hold rates of
                                     genuine reports per kind, the evidence codes seen, the
                                     devices re-centred. `met` is judged on these rates. The
                                     per-user signals (travel, trigger sequence) are not
                                     replayed: they judge locations and triggers, and these
                                     rates are of reports (no agent sends a location yet).

Every logged device is assumed genuine: run it on a fleet of simulated devices (tools.fleet, the
demo) or on real devices used by their owners. `--write PATH` writes a calibration file from
these genuine scores (the same rates as `python -m tools.eval_risk calibration --write`), for a
bridge to load with `[risk] calibration = PATH` (docs/risk.md, "Recalibrating").
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.config import REPO_MODEL
from agent.features import Fingerprint, model_input
from agent.scoring import Scorer
from cloud_bridge.config import BridgeConfig
from cloud_bridge.risk import calibration as cal
from cloud_bridge.risk import setup as risk_setup
from cloud_bridge.risk import signals
from cloud_bridge.risk.calibration import Calibration, KindThresholds
from cloud_bridge.risk.fingerprint import IdentityScales
from cloud_bridge.risk.server_score import ServerScorer
from cloud_bridge.risk.verdict import Level, Scored, Thresholds, judge
from cloud_bridge.store import logs_repo, open_store, registry_repo
from protocol import cose
from protocol import messages as m
from protocol.errors import ProtocolError
from tools.eval_risk.sig_calibration import HOLD_GOAL, HOLD_RATE, STEP_UP_GOAL, STEP_UP_RATE

CROSS_PER_DEVICE = 40  # other devices' reports scored against each baseline


@dataclass(frozen=True)
class Logged:
    device: str
    kind: str
    report: m.Report


@dataclass(frozen=True)
class DataEvent:
    """A logged report or trigger with the bridge's receive time."""

    device: str
    kind: str
    received_ms: int
    message: m.Report | m.Trigger


def read_events(db: str) -> list[DataEvent]:
    """Every logged report and trigger, by device and sequence number."""
    with open_store(db) as store, store.transaction() as tx:
        kinds = {d.device_id: d.kind for d in registry_repo.devices(tx)}
        rows = logs_repo.events(tx)
    out = []
    for row in rows:
        try:
            msg = m.decode(cose.peek_payload(row.envelope))
        except ProtocolError:
            continue
        if isinstance(msg, m.Report | m.Trigger):
            out.append(DataEvent(row.device_id, kinds.get(row.device_id, ""), row.received_ms, msg))
    return out


def decide(
    events: list[DataEvent],
    baselines: dict[str, dict[int, int]],
    scorer: Scorer,
    thresholds: Thresholds,
    scales: IdentityScales | None,
) -> dict[str, Any]:
    """The bridge's verdict on every logged report, replayed device by device (see the module
    docstring): rates per kind of genuine reports at step_up or above and at hold or above."""
    server = ServerScorer([scorer])
    flagged: dict[str, list[Level]] = defaultdict(list)
    codes: dict[str, int] = defaultdict(int)
    shifted: dict[str, int] = {}
    memory: dict[str, signals.Memory] = {}
    streak: dict[str, int] = defaultdict(int)
    last: dict[str, Scored] = {}
    for e in events:
        msg, kind = e.message, e.kind
        if isinstance(msg, m.Report):
            s = server.score(
                msg.model_id,
                msg.model_sha256,
                msg.fingerprint,
                msg.features,
                msg.risk_pm,
                baselines[e.device],
            )
            scored = Scored(s.output_q, tuple(t.value for t in s.tamper))
            last[e.device] = scored
        else:
            before = last.get(e.device, Scored(None))
            scored = Scored(before.output_q, before.tamper, fresh=False)
        done = signals.assess(
            memory.get(e.device, signals.Memory()),
            signals.seen_of(msg, e.received_ms),
            baselines[e.device],
            scales,
            thresholds.kinds.get(kind),
            scored,
            thresholds.signals,
        )
        memory[e.device] = done.memory
        v = judge(kind, scored, streak[e.device], frozenset(), thresholds, done.evidence)
        streak[e.device] = v.streak
        for c in done.evidence.codes:
            codes[c] += 1
        if isinstance(msg, m.Report):
            flagged[kind].append(v.level)
    kind_of = {e.device: e.kind for e in events}
    for device, mem in memory.items():  # each device's shift at the end of the run
        kt = thresholds.kinds.get(kind_of[device])
        if kt is not None and mem.centre.shift_q(kt, thresholds.signals):
            shifted[device] = mem.centre.shift_q(kt, thresholds.signals)
    per_kind = {}
    worst_step_up = worst_hold = 0.0
    for kind, levels in sorted(flagged.items()):
        n = len(levels)
        step_up = sum(1 for lv in levels if lv is not Level.ALLOW) / n
        hold = sum(1 for lv in levels if lv in (Level.HOLD, Level.FREEZE)) / n
        worst_step_up, worst_hold = max(worst_step_up, step_up), max(worst_hold, hold)
        per_kind[kind] = {
            "reports": n,
            "step_up_rate": round(step_up, 5),
            "hold_rate": round(hold, 5),
            "recentred_devices": sum(1 for d in shifted if kind_of[d] == kind),
        }
    return {
        "step_up_rate": round(worst_step_up, 5),
        "hold_rate": round(worst_hold, 5),
        "evidence": dict(sorted(codes.items())),
        "recentred": dict(sorted(shifted.items())),
        "per_kind": per_kind,
        "met": worst_step_up <= STEP_UP_GOAL and worst_hold <= HOLD_GOAL,
    }


def read(db: str) -> tuple[list[Logged], dict[str, dict[int, int]]]:
    """The logged reports and every device's enrolled baseline."""
    with open_store(db) as store, store.transaction() as tx:
        devices = registry_repo.devices(tx)
        rows = logs_repo.events(tx, kind=int(m.Kind.REPORT))
    kinds = {d.device_id: d.kind for d in devices}
    baselines = {d.device_id: d.baseline for d in devices}
    out = []
    for row in rows:
        try:
            report = m.decode_as(cose.peek_payload(row.envelope), m.Report)
        except ProtocolError:
            continue
        out.append(Logged(row.device_id, kinds.get(row.device_id, ""), report))
    return out, baselines


def measure(
    logged: list[Logged],
    baselines: dict[str, dict[int, int]],
    scorer: Scorer,
    thresholds: dict[str, KindThresholds],
) -> tuple[dict[str, Any], dict[str, list[int]]]:
    """(the figures, the genuine q per kind)."""
    server = ServerScorer([scorer])
    genuine: dict[str, list[int]] = defaultdict(list)
    tamper: dict[str, int] = defaultdict(int)
    per_device: dict[str, list[Logged]] = defaultdict(list)
    for item in logged:
        r = item.report
        s = server.score(
            r.model_id, r.model_sha256, r.fingerprint, r.features, r.risk_pm, baselines[item.device]
        )
        for code in s.tamper:
            tamper[code.value] += 1
        if s.output_q is not None:
            genuine[item.kind].append(s.output_q)
            per_device[item.device].append(item)
    per_kind: dict[str, dict[str, Any]] = {}
    worst_step_up = worst_hold = 0.0
    hits = total = 0
    for kind, qs in sorted(genuine.items()):
        t = thresholds.get(kind)
        if t is None:
            continue
        step_up, hold = cal.flagged_rate(qs, t.step_up_q), cal.flagged_rate(qs, t.hold_q)
        worst_step_up, worst_hold = max(worst_step_up, step_up), max(worst_hold, hold)
        k_hits, k_total = _cross(kind, per_device, baselines, scorer, t)
        hits, total = hits + k_hits, total + k_total
        per_kind[kind] = {
            "reports": len(qs),
            "devices": sum(1 for d in per_device.values() if d and d[0].kind == kind),
            "step_up_q": t.step_up_q,
            "hold_q": t.hold_q,
            "step_up_rate": round(step_up, 5),
            "hold_rate": round(hold, 5),
            "cross_device_detection": round(k_hits / k_total, 4) if k_total else None,
        }
    result = {
        "reports": sum(len(q) for q in genuine.values()),
        "devices": len(per_device),
        "step_up_rate": round(worst_step_up, 5),
        "hold_rate": round(worst_hold, 5),
        "tamper": dict(tamper),
        "cross_device_detection": round(hits / total, 4) if total else None,
        "per_kind": per_kind,
        "goal": f"genuine step-up <= {STEP_UP_GOAL:.0%} and hold <= {HOLD_GOAL:.1%} in every kind",
        "met": worst_step_up <= STEP_UP_GOAL and worst_hold <= HOLD_GOAL and not tamper,
    }
    return result, dict(genuine)


def _cross(
    kind: str,
    per_device: dict[str, list[Logged]],
    baselines: dict[str, dict[int, int]],
    scorer: Scorer,
    t: KindThresholds,
    shift: dict[str, int] | None = None,
) -> tuple[int, int]:
    """Other devices' reports of `kind` against each device's baseline: (flagged, scored), at
    the kind's step-up threshold moved up by the victim's re-centring `shift` (if given)."""
    devices = sorted(d for d, items in per_device.items() if items and items[0].kind == kind)
    hits = total = 0
    for victim in devices:
        base = Fingerprint.from_wire(baselines[victim])
        others = [i for d in devices if d != victim for i in per_device[d]]
        step = max(1, len(others) // CROSS_PER_DEVICE)
        for item in others[::step][:CROSS_PER_DEVICE]:
            current = Fingerprint.from_wire(item.report.fingerprint)
            q = scorer.score(model_input(current, base, scorer.normalisation)).output_q
            hits += q >= t.shifted((shift or {}).get(victim, 0)).step_up_q
            total += 1
    return hits, total


def cross_detection(
    logged: list[Logged],
    baselines: dict[str, dict[int, int]],
    scorer: Scorer,
    thresholds: dict[str, KindThresholds],
    shift: dict[str, int],
) -> float | None:
    """Cross-device impostor detection at each victim's re-centred step-up threshold: what
    re-centring costs in detection on the devices it moved."""
    per_device: dict[str, list[Logged]] = defaultdict(list)
    for item in logged:
        per_device[item.device].append(item)
    hits = total = 0
    for kind, t in thresholds.items():
        k_hits, k_total = _cross(kind, per_device, baselines, scorer, t, shift)
        hits, total = hits + k_hits, total + k_total
    return round(hits / total, 4) if total else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tools.eval_risk.live",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--db", required=True, help="the bridge's SQLite path or postgresql:// DSN")
    ap.add_argument("--model", type=Path, default=REPO_MODEL)
    ap.add_argument("--calibration", type=Path, help="default: <model>.calibration.json")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--write", type=Path, help="write a calibration file from these scores")
    args = ap.parse_args(argv)
    scorer = Scorer.load(args.model)
    current = cal.load(args.calibration or args.model.with_suffix(".calibration.json"))
    logged, baselines = read(args.db)
    result, genuine = measure(logged, baselines, scorer, dict(current.kinds))
    cfg = BridgeConfig(path=None, data_dir=Path("."))
    decision = decide(
        read_events(args.db),
        baselines,
        scorer,
        risk_setup.thresholds(cfg, current),
        current.identity_scales,
    )
    decision["cross_device_detection"] = cross_detection(
        logged, baselines, scorer, dict(current.kinds), decision["recentred"]
    )
    result["score_only"] = {k: result[k] for k in ("step_up_rate", "hold_rate", "met")}
    result["decision"] = decision
    result["met"] = bool(decision["met"]) and not result["tamper"]
    print(json.dumps(result, indent=1 if args.json else None, sort_keys=True))
    if args.write:
        new = Calibration(
            model_id=scorer.model_id,
            model_sha256=scorer.model_sha256.hex(),
            step_up_rate=STEP_UP_RATE,
            hold_rate=HOLD_RATE,
            kinds=cal.calibrate(genuine, STEP_UP_RATE, HOLD_RATE),
            source={
                "cohort": "live reports logged by a bridge",
                "reports": result["reports"],
                "devices": result["devices"],
                "tool": "python -m tools.eval_risk.live --write",
            },
        )
        args.write.write_text(json.dumps(new.to_json(), indent=1) + "\n")
        print(f"wrote {args.write}", file=sys.stderr)
    return 0 if result["met"] else 1


if __name__ == "__main__":
    sys.exit(main())

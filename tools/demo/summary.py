"""The end of a demo run: its outcome as text for the terminal and as JSON for scripts."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.demo.moments import Moment
from tools.demo.watch import Record, percentile
from tools.fleet.loss import Loss


@dataclass
class Outcome:
    """Everything the summary reports; `reasons` is empty when the run passed."""

    devices: int
    households: int
    duration_s: float
    wall_s: float
    broker: str
    seed: int
    moments: list[Moment]
    record: Record
    losses: list[Loss]
    events_stored: int
    chart: Path | None
    out: Path
    tap: str
    reasons: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.reasons

    def throughput(self) -> tuple[float, int]:
        """(mean reports+triggers per second over the run, the busiest second)."""
        seconds = max(1, int(self.duration_s))
        series = self.record.reports[:seconds]
        return sum(series) / seconds, max(series, default=0)

    def latency(self) -> tuple[float, float, int]:
        values = [ms for _t, ms in self.record.latency]
        return percentile(values, 50), percentile(values, 99), len(values)


def _took(moment: Moment) -> str:
    return f"{moment.took_s:6.2f} s" if moment.took_s is not None else "     - "


def text(o: Outcome) -> str:
    rec = o.record
    mean, peak = o.throughput()
    p50, p99, n = o.latency()
    lines = [
        f"demo summary: {o.devices} devices in {o.households} households, "
        f"{o.duration_s:.0f} s run ({o.wall_s:.0f} s with set-up and checks), "
        f"broker {o.broker}, seed {o.seed}",
        "",
        "moments",
    ]
    for moment in o.moments:
        mark = "✓" if moment.state == "done" else "✗"
        lines.append(
            f"  {mark} {moment.title:30} {_took(moment)}  {moment.failed or moment.detail}"
        )
    lost = [loss for loss in o.losses if not loss.ok]
    waiting = sum(loss.waiting for loss in o.losses)
    lines += [
        "",
        "totals",
        f"  device messages seen  {sum(rec.reports)} reports and triggers",
        f"  decisions             {sum(rec.decisions)}  ("
        + ", ".join(f"{k} {v}" for k, v in sorted(rec.verdicts.items()))
        + ")",
        "  by action/result      "
        + ", ".join(
            f"{a}/{r} {v}" for (a, r), v in sorted(rec.by_outcome.items(), key=lambda kv: -kv[1])
        ),
        "  risk notes            "
        + (
            ", ".join(
                f"{c}/{r} {v}" for (c, r), v in sorted(rec.risk.items(), key=lambda kv: -kv[1])
            )
            or "none"
        ),
        f"  events stored         {o.events_stored} in the bridge's log; "
        f"{waiting} still in outboxes",
        f"  zero loss             {len(o.losses) - len(lost)}/{len(o.losses)} devices "
        + (
            "ok"
            if not lost
            else "FAILED: " + "; ".join(f"{x.device_id}: {x.problem}" for x in lost[:3])
        ),
        f"  throughput            {mean:.1f} reports/s mean, {peak} in the busiest second",
        f"  decision latency      p50 {p50:.1f} ms, p99 {p99:.1f} ms over {n} decisions "
        "(bridge receipt to decision at a subscriber)",
        "",
        f"chart    {o.chart if o.chart else '(not written)'}",
        f"output   {o.out}",
        f"tap      {o.tap}   (while a demo runs)",
        "",
        "result   PASS" if o.passed else "result   FAIL: " + "; ".join(o.reasons),
    ]
    return "\n".join(lines)


def to_json(o: Outcome) -> dict[str, Any]:
    mean, peak = o.throughput()
    p50, p99, n = o.latency()
    return {
        "passed": o.passed,
        "reasons": o.reasons,
        "devices": o.devices,
        "households": o.households,
        "duration_s": o.duration_s,
        "wall_s": round(o.wall_s, 1),
        "broker": o.broker,
        "seed": o.seed,
        "moments": [
            {
                "key": m.key,
                "title": m.title,
                "state": m.state,
                "took_s": None if m.took_s is None else round(m.took_s, 3),
                "detail": m.failed or m.detail,
            }
            for m in o.moments
        ],
        "decisions": sum(o.record.decisions),
        "by_action_result": {f"{a}/{r}": v for (a, r), v in o.record.by_outcome.items()},
        "verdicts": dict(o.record.verdicts),
        "risk_notes": {f"{c}/{r}": v for (c, r), v in o.record.risk.items()},
        "events_stored": o.events_stored,
        "zero_loss": all(loss.ok for loss in o.losses),
        "losses": [
            {
                "device": x.device_id,
                "stored": x.stored,
                "used": x.used,
                "waiting": x.waiting,
                "problem": x.problem,
            }
            for x in o.losses
        ],
        "reports_per_s_mean": round(mean, 2),
        "reports_per_s_peak": peak,
        "latency_ms": {"p50": round(p50, 2), "p99": round(p99, 2), "n": n},
        "chart": str(o.chart) if o.chart else None,
    }


def write(o: Outcome) -> Path:
    path = o.out / "summary.json"
    path.write_text(json.dumps(to_json(o), indent=1) + "\n")
    (o.out / "summary.txt").write_text(text(o) + "\n")
    return path

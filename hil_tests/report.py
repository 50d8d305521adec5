"""The run's human report: hil-report/report.md with each scenario's figure and verdict, and a
PNG chart per scenario (backlog, latency or memory over time).

Scenarios record through the ``record`` fixture (hil_tests/conftest.py); the verdict is the
test's outcome, filled in by the conftest's report hook, so a figure whose assertion failed is
shown as FAIL beside the number that failed it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Figure:
    """One scenario run on one rig: its headline figure and the series behind the chart."""

    test_id: str
    scenario: str
    rig: str
    summary: str = ""  # the measured figure(s), one line, e.g. "drain 3.2 s, 0 lost of 84"
    verdict: str = "not run"  # PASS, FAIL, SKIP
    detail: str = ""  # why it failed or skipped
    seconds: float = 0.0
    series: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    y_label: str = ""
    x_label: str = "time since scenario start (s)"

    def add(self, name: str, t_s: float, value: float) -> None:
        self.series.setdefault(name, []).append((t_s, value))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:120]


def chart(fig: Figure, out_dir: Path) -> Path | None:
    """A PNG of the figure's series, or None without series."""
    if not any(fig.series.values()):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{_slug(fig.test_id)}.png"
    figure, ax = plt.subplots(figsize=(7, 3))
    for name, points in fig.series.items():
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, label=name, marker="." if len(points) < 50 else None)
    ax.set_xlabel(fig.x_label)
    ax.set_ylabel(fig.y_label)
    ax.set_title(f"{fig.scenario} on {fig.rig}: {fig.verdict}")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path


def write(figures: list[Figure], out_dir: Path, header: str) -> Path:
    """Write report.md (and the charts) into ``out_dir``; its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        "# HIL bench report",
        "",
        header,
        "",
        "| scenario | rig | verdict | figure | time (s) |",
        "|---|---|---|---|---|",
    ]
    for f in figures:
        lines.append(
            f"| {f.scenario} | {f.rig} | {f.verdict} | {f.summary or '-'} | {f.seconds:.0f} |"
        )
    for f in figures:
        lines += ["", f"## {f.scenario} on {f.rig}: {f.verdict}", "", f"`{f.test_id}`", ""]
        lines.append(f"Figure: {f.summary or '(none recorded)'}")
        if f.detail:
            lines += ["", "```", f.detail[-1500:], "```"]
        png = chart(f, out_dir / "charts")
        if png is not None:
            lines += ["", f"![{f.scenario} on {f.rig}](charts/{png.name})"]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path

"""The demo's PNG: throughput, decision latency and pool balances over the run (matplotlib, Agg).

Scripted cues (emergency, clone, broker restart) are drawn as vertical lines on every panel,
and the broker's downtime as a shaded band, so a dip or a jump can be matched to its cause.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: render to a file only

import matplotlib.pyplot as plt  # after the backend is chosen

from tools.demo.moments import Moment
from tools.demo.watch import Record, percentile


def _per_second_percentiles(
    latency: list[tuple[float, float]], seconds: int, q: float
) -> list[float]:
    """Per second; NaN where no decision arrived, so the line breaks instead of bridging a gap."""
    buckets: list[list[float]] = [[] for _ in range(seconds)]
    for t, ms in latency:
        if 0 <= int(t) < seconds:
            buckets[int(t)].append(ms)
    return [max(percentile(b, q), 0.1) if b else math.nan for b in buckets]


def draw(
    record: Record,
    moments: list[Moment],
    duration_s: float,
    down: tuple[float, float] | None,
    path: Path,
    title: str,
) -> Path:
    """Write the chart to `path` and return it. `down` is the broker's (stop, start) times."""
    seconds = max(len(record.reports), len(record.decisions), int(duration_s) + 1)
    xs = list(range(seconds))
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(11, 10), sharex=True)
    fig.suptitle(title, fontsize=11)

    def padded(series: list[int]) -> list[int]:
        return series + [0] * (seconds - len(series))

    ax1.plot(xs, padded(record.reports), label="reports + triggers /s (on the broker)", lw=1.4)
    ax1.plot(xs, padded(record.decisions), label="decisions /s (signed by the bridge)", lw=1.1)
    ax1.set_ylabel("messages / s")
    ax1.set_title("throughput", fontsize=10, loc="left")

    if record.latency:
        ax2.scatter(
            [t for t, _ in record.latency],
            [max(ms, 0.1) for _, ms in record.latency],
            s=3,
            alpha=0.25,
            color="tab:gray",
            label="each decision",
        )
        for q, color in ((50, "tab:blue"), (99, "tab:red")):
            ys = _per_second_percentiles(record.latency, seconds, q)
            ax2.plot(
                [x + 0.5 for x in xs],
                ys,
                color=color,
                lw=1.2,
                label=f"p{q} per second",
            )
        ax2.set_yscale("log")
    ax2.set_ylabel("ms")
    ax2.set_title(
        "decision latency: bridge receipt to decision at a subscriber", fontsize=10, loc="left"
    )

    # Balances move by hundreds of yuan against limits of tens of thousands: plot what changes
    # (credit in use, and the limit's change since the start), not the limit itself.
    users = sorted({pool.user for _t, pool in record.pool_history})
    colors = plt.get_cmap("tab10")
    for i, user in enumerate(users):
        points = [(t, p) for t, p in record.pool_history if p.user == user]
        # A step plot: a balance holds until the next state arrives; extend to the end.
        ts = [t for t, _p in points] + [float(seconds)]
        in_use = [(p.outstanding_fen + p.held_fen) / 100 for _t, p in points]
        boost = [(p.limit_fen - points[0][1].limit_fen) / 100 for _t, p in points]
        tint = colors(i % 10)
        ax3.step(ts, in_use + in_use[-1:], where="post", color=tint, lw=1.3, label=user)
        ax3.step(ts, boost + boost[-1:], where="post", color=tint, lw=0.9, ls="--")
        frozen = next(
            ((t, v) for (t, p), v in zip(points, in_use, strict=True) if p.status == "frozen"), None
        )
        if frozen is not None:
            ax3.plot([frozen[0]], [frozen[1]], marker="X", color=tint, ms=9)
            ax3.annotate(f" {user} frozen", frozen, color=tint, fontsize=8)
    ax3.set_ylabel("yuan")
    ax3.set_xlabel("seconds since the agents started")
    ax3.set_title(
        "pools: credit in use, outstanding + held (solid); limit raised since the start (dashed)",
        fontsize=10,
        loc="left",
    )

    for ax in (ax1, ax2, ax3):
        if down is not None:
            ax.axvspan(
                down[0],
                down[1],
                color="tab:red",
                alpha=0.12,
                label="broker down" if ax is ax1 else None,
            )
        for moment in moments:
            if moment.cue_s is not None and moment.key != "restart":
                ax.axvline(moment.cue_s, color="tab:purple", lw=0.8, ls=":")
                if ax is ax1:
                    ax.annotate(
                        moment.key,
                        (moment.cue_s, 0),
                        rotation=90,
                        fontsize=8,
                        color="tab:purple",
                        va="bottom",
                    )
        ax.grid(alpha=0.3)
        ax.set_xlim(0, seconds)
    ax1.legend(loc="upper right", fontsize=8)
    if record.latency:
        ax2.legend(loc="upper right", fontsize=8)
    if users:
        ax3.legend(loc="upper left", fontsize=7, ncol=min(len(users), 6))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

"""Emergency service levels (issue 16 item 6): each payout instruction measured against its
tier's budget, from receiving the trigger to handing the signed instruction to the broker.

`judge_payout` is pure; the server observes the histogram, counts a late payout and publishes its
`payout_late` alert on the device's risk topic (stored in the outbox like every alert).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cloud_bridge.ingest import PayoutTiming
from cloud_bridge.judge import Category, RiskNote
from cloud_bridge.metrics import Metrics

LATE_REASON = "payout_late"


@dataclass(frozen=True, slots=True)
class PayoutLatency:
    """How long a payout took and, when it missed its tier's budget, the alert to raise."""

    tier: str
    seconds: float
    late: RiskNote | None


def judge_payout(timing: PayoutTiming, published_ns: int) -> PayoutLatency:
    """The latency of one payout instruction published at `published_ns` (monotonic)."""
    elapsed_ns = max(0, published_ns - timing.received_ns)
    elapsed_ms = elapsed_ns // 1_000_000
    late = None
    if elapsed_ms > timing.budget_ms:
        late = RiskNote(
            Category.ALERT,
            LATE_REASON,
            f"{timing.tier} payout took {elapsed_ms} ms, budget {timing.budget_ms} ms",
            timing.device_seq,
        )
    return PayoutLatency(timing.tier, elapsed_ns / 1e9, late)


def measure_payouts(
    metrics: Metrics, timings: Sequence[PayoutTiming], published_ns: int
) -> list[tuple[PayoutTiming, RiskNote]]:
    """Observe each payout's latency by tier, count the late ones; their alerts to raise."""
    late = []
    for timing in timings:
        measured = judge_payout(timing, published_ns)
        metrics.payout.labels(tier=measured.tier).observe(measured.seconds)
        if measured.late is not None:
            metrics.payout_late.labels(tier=measured.tier).inc()
            late.append((timing, measured.late))
    return late

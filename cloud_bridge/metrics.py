"""Prometheus metrics of one bridge process (prometheus-client), served over HTTP on
`[metrics] port`. Each server has its own registry so several can live in one test process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
PAYOUT_BUCKETS = (*LATENCY_BUCKETS, 10.0, 15.0, 30.0, 45.0, 60.0, 120.0)
"""Latency buckets up to the emergency tiers' budgets (15, 30, 45 s by default) and beyond."""


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.accepted = Counter(
            "cp_bridge_accepted", "Device messages accepted and committed", registry=r
        )
        self.rejected = Counter(
            "cp_bridge_rejected", "Device messages refused, by reason code", ["reason"], registry=r
        )
        self.action_refused = Counter(
            "cp_bridge_action_refused",
            "Pool actions of accepted device events refused, by the pool's result code "
            "(trigger limits such as too_many_emergencies among them)",
            ["result"],
            registry=r,
        )
        self.risk_reasons = Counter(
            "cp_bridge_risk_reasons",
            "Reasons of the risk verdicts of accepted device events: score_step_up, score_hold, "
            "score_freeze, unscored, the tamper codes (features_mismatch, score_mismatch, "
            "unknown_model, bad_fingerprint) and clone signals",
            ["reason"],
            registry=r,
        )
        self.latency = Histogram(
            "cp_bridge_decision_latency_seconds",
            "From receiving a device event to publishing its decision",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.payout = Histogram(
            "cp_bridge_emergency_payout_seconds",
            "From receiving an emergency trigger to handing its signed payout instruction to "
            "the broker, by tier (illness, disaster, education)",
            ["tier"],
            buckets=PAYOUT_BUCKETS,
            registry=r,
        )
        self.payout_late = Counter(
            "cp_bridge_emergency_payout_late",
            "Payout instructions later than their tier's budget (emergency.<tier>_response_ms "
            "of the policy); each also raises a payout_late risk alert",
            ["tier"],
            registry=r,
        )
        self.db_seconds = Histogram(
            "cp_bridge_db_seconds",
            "Database time per ingest batch",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "cp_bridge_batch_size",
            "Messages per ingest batch",
            buckets=(1, 4, 16, 64, 256, 1024),
            registry=r,
        )
        self.backlog = Gauge(
            "cp_bridge_backlog", "Messages received and not yet processed", registry=r
        )
        self.backlog_bytes = Gauge(
            "cp_bridge_backlog_bytes", "Bytes received and not yet processed", registry=r
        )
        self.unstored = Counter(
            "cp_bridge_rejected_unstored",
            "Refusals over the storage budget, by reason code: counted in cp_bridge_rejected, "
            "neither stored in rejections nor published",
            ["reason"],
            registry=r,
        )
        self.pruned = Counter(
            "cp_bridge_pruned_rows", "Rows deleted by retention, by table", ["table"], registry=r
        )
        self.pending_outputs = Gauge(
            "cp_bridge_pending_outputs",
            "Committed outputs not yet acknowledged by the broker",
            registry=r,
        )
        self.published = Counter(
            "cp_bridge_published", "Messages published by the bridge", registry=r
        )
        self.restored = Counter(
            "cp_bridge_retained_restored",
            "Retained states answered: empty, foreign, older or offline bridge states that made "
            "the bridge announce itself again (bridge_state; several may share one announcement), "
            "and pool states published again over an empty, foreign or older one (pool_state)",
            ["topic"],
            registry=r,
        )
        self.unchecked = Counter(
            "cp_bridge_retained_unchecked",
            "Pool states seen while too many were waiting to be checked: not checked",
            registry=r,
        )

        self.config_drift = Gauge(
            "cp_bridge_config_drift",
            "Devices whose reported configuration version lags their desired one (cloud-bridge "
            "devices config set): offline since the change, or refusing it",
            registry=r,
        )

        self.claims = Counter(
            "cp_bridge_claims",
            "Claims answered, by result: enrolled, again (a retry answered again), the refusal "
            "codes (claim_used, claim_expired, claim_revoked, ...), dropped (queue full); "
            "sync_failed: answers withheld, the broker's files could not be rewritten",
            ["result"],
            registry=r,
        )

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        if port:
            start_http_server(port, addr=host, registry=self.registry)

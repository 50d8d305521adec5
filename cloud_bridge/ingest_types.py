"""The values the ingest takes and gives (cloud_bridge.ingest): what arrived, what a batch
made, a refusal, a payout's timing. Re-exported by cloud_bridge.ingest."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cloud_bridge.judge import Rejection
from cloud_bridge.outputs import Output
from protocol import cose
from protocol.errors import Reason

OVERSIZE_KEPT = 256
"""Bytes of an oversize payload kept (as evidence in `rejections`); the rest is never copied."""


@dataclass(frozen=True, slots=True)
class Inbound:
    topic: str
    payload: bytes
    received_ms: int
    received_ns: int = 0  # monotonic, for the latency histogram
    oversize: int = 0  # the real size of a payload over the envelope limit, cut to OVERSIZE_KEPT

    @classmethod
    def received(
        cls, topic: str, payload: bytes | bytearray | memoryview, received_ms: int, received_ns: int
    ) -> Inbound:
        """What arrived, ready to queue: a payload over `cose.MAX_ENVELOPE_BYTES` is refused
        without being decoded, so only its first bytes are copied and kept."""
        size = len(payload)
        if size > cose.MAX_ENVELOPE_BYTES:
            return cls(topic, bytes(payload[:OVERSIZE_KEPT]), received_ms, received_ns, size)
        return cls(topic, bytes(payload), received_ms, received_ns)

    @property
    def size(self) -> int:
        """Bytes it holds (what the inbox counts)."""
        return len(self.topic) + len(self.payload)


@dataclass(frozen=True, slots=True)
class BatchResult:
    outputs: tuple[Output, ...]  # to publish, in order
    accepted: int
    rejected: Mapping[Reason, int]  # refusals (duplicates included) by reason
    unstored: Mapping[Reason, int]  # refusals over the budget: counted, neither stored nor sent
    decided_ns: tuple[int, ...]  # received_ns of the events that have decisions
    db_seconds: float
    # Events' own pool commands refused (trigger limits among them), by result code.
    action_refusals: Mapping[str, int] = field(default_factory=dict)
    # Reasons of the data events' risk verdicts (score levels, tamper codes, clone signals).
    risk_reasons: Mapping[str, int] = field(default_factory=dict)
    # The payout instructions among `outputs`, to measure against their tier's budget.
    payouts: tuple[PayoutTiming, ...] = ()


@dataclass(frozen=True, slots=True)
class PayoutTiming:
    """A payout instruction made in a batch: whose, of which tier, and since when it counts
    (the trigger's receipt, monotonic ns) against which budget (ms)."""

    fleet: str
    device: str
    device_seq: int
    tier: str
    received_ns: int
    budget_ms: int


@dataclass(frozen=True, slots=True)
class Refused:
    item: Inbound
    rejection: Rejection
    signer: str | None = None  # the enrolled device whose key verified it; None: none did

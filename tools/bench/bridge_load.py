"""The bridge suite's workload: a fleet of enrolled devices and the signed reports they send.

Devices report as agents do, so the bridge takes its normal path: each device is enrolled with
the fingerprint baseline of a simulated board (`agent.simulator`, the bench cohort), and each
report carries one of that board's genuine sessions, its model input and the score the
repository's model gives it (the model the bridge loads by default). The bridge's own score
then agrees with the device's, the verdict allows, and no alert goes out. A fleet of more
devices than `BOARDS` reuses the boards' hardware, but every device has a baseline of its own
(a board's, moved by a few micro-g), so the bridge sees as many distinct baselines
as devices, as it would in the field.

Reports are numbered from 1 per device and spaced `REPORT_INTERVAL_MS` apart on the device's
clocks, the newest made just before the run: a backlog the devices built while the bridge was
away, which it then drains.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import nacl.signing

from agent.config import REPO_MODEL
from agent.features import Fingerprint, model_input
from agent.scoring import Scorer
from agent.simulator.cohort import SPLITS, LabelledSession, device_sessions
from agent.simulator.profiles import DEVICE_KINDS
from cloud_bridge.risk import calibration
from protocol import envelope, topics
from protocol import messages as m
from protocol.topics import Channel

BOARDS = 40
"""Simulated boards (their hardware and owners); device i has board i % BOARDS."""
SESSIONS = 12
"""Genuine sessions simulated per board; its devices report those the calibration allows,
each time measured a little differently."""
Q_NEVER = 128  # above every model output: no threshold
REPORT_INTERVAL_MS = 60_000
KM_30D = 900  # an EV's telemetry


@dataclass(frozen=True, slots=True)
class Device:
    device_id: str
    kind: str
    key: nacl.signing.SigningKey
    baseline: Fingerprint
    board: int

    @property
    def user(self) -> str:
        return f"user-{self.device_id}"

    def enrollment(self, fleet: str) -> bytes:
        """The device's signed enrollment record (its key and baseline)."""
        record = m.Enrollment(
            sender=self.device_id, seq=1, boot=0, ts_ms=1, fleet=fleet, device_kind=self.kind,
            public_key=bytes(self.key.verify_key), baseline=self.baseline.to_wire(),
        )  # fmt: skip
        return envelope.seal(record, self.key)


class Fleet:
    """`count` devices on `BOARDS` simulated boards, their reports scored by the repository's
    model as the agent scores them."""

    def __init__(self, count: int, prefix: str = "dev") -> None:
        self.scorer = Scorer.load(REPO_MODEL)
        allowed = calibration.load(REPO_MODEL.with_suffix(".calibration.json"))
        self.boards = [_board(i, self.scorer, allowed) for i in range(min(BOARDS, count))]
        self.devices = [self._device(f"{prefix}-{i:05d}", i) for i in range(count)]

    def _device(self, device_id: str, i: int) -> Device:
        n = len(self.boards)
        board = self.boards[i % n]
        key = nacl.signing.SigningKey.generate()
        return Device(device_id, board.kind, key, _moved(board.baseline, i // n), i % n)

    def report(self, device: Device, seq: int, newest: int, now_ms: int) -> m.Report:
        """Report `seq` of the device whose newest report is number `newest`, made at now_ms:
        a session of its board, measured a little differently each time (no two fingerprints
        of a device are the same: a repeated one is a replay, `cloud_bridge.risk.clone`)."""
        board = self.boards[device.board]
        session = replace(
            board.genuine[seq % len(board.genuine)],
            jitter_ns=board.genuine[seq % len(board.genuine)].jitter_ns + seq,
        )
        score = self.scorer.score(model_input(session, device.baseline, self.scorer.normalisation))
        made_ms = now_ms - (newest - seq) * REPORT_INTERVAL_MS
        return m.Report(
            sender=device.device_id, seq=seq, boot=1, ts_ms=made_ms,
            model_id=self.scorer.model_id, model_sha256=self.scorer.model_sha256,
            risk_pm=score.risk_pm, features=score.input_q, mono_ms=seq * REPORT_INTERVAL_MS,
            fingerprint=session.to_wire(),
            telemetry={"km_30d": KM_30D} if device.kind == "ev" else {},
        )  # fmt: skip

    def signed(self, fleet: str, n: int) -> list[tuple[str, bytes]]:
        """n signed reports (topic, payload), round robin over the devices, each device's
        numbers from 1."""
        per_device = n // len(self.devices)
        now_ms = time.time_ns() // 1_000_000
        return [
            (
                topics.device(fleet, d.device_id, Channel.REPORT),
                envelope.seal(self.report(d, s, per_device, now_ms), d.key),
            )
            for s in range(1, per_device + 1)
            for d in self.devices
        ]

    def __iter__(self) -> Iterator[Device]:
        return iter(self.devices)

    def __len__(self) -> int:
        return len(self.devices)


@dataclass(frozen=True, slots=True)
class _Board:
    kind: str
    baseline: Fingerprint
    genuine: tuple[Fingerprint, ...]


def _board(i: int, scorer: Scorer, cal: calibration.Calibration) -> _Board:
    """Board i of the bench cohort: its baseline and the genuine sessions its kind's calibrated
    threshold allows (a step-up verdict is not the path this suite measures)."""
    kind = DEVICE_KINDS[i % len(DEVICE_KINDS)]
    sessions = device_sessions(SPLITS["bench"] + i, kind, genuine=SESSIONS, per_impostor=0)
    limits = cal.for_kind(kind)
    step_up_q = limits.step_up_q if limits is not None else Q_NEVER

    def allowed(s: LabelledSession) -> bool:
        q = scorer.score(model_input(s.current, s.baseline, scorer.normalisation)).output_q
        return q < step_up_q

    genuine = tuple(s.current for s in sessions if allowed(s))
    if not genuine:
        raise RuntimeError(f"bench board {i} ({kind}) has no session its threshold allows")
    return _Board(kind, sessions[0].baseline, genuine)


def _moved(baseline: Fingerprint, copy: int) -> Fingerprint:
    """A board's baseline for its `copy`-th device: the gravity norm moved by `copy` micro-g,
    far below the spread between sessions, so that no two devices share one."""
    return replace(baseline, accel_norm_ug=baseline.accel_norm_ug + copy)

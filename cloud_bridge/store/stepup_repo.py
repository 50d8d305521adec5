"""Pending step-ups (migration 008): an event's action held until the user confirms on their
primary device. The rows are `cloud_bridge.risk.stepup.PendingStepUp` values plus where the
held event lives and the command that asked; the transitions are the pure module's."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from cloud_bridge.risk.stepup import PendingStepUp, Status
from cloud_bridge.store.base import Transaction

PRIMARY_KIND = "phone"
"""The kind of device a user confirms on; a user without one confirms on the event's device."""

_COLS = (
    "event, device_id, seq, fleet, user_id, primary_device, cmd_seq, challenge, opened_ms, "
    "deadline_ms, status"
)


@dataclass(frozen=True, slots=True)
class StepUpRow:
    pending: PendingStepUp
    device_id: str  # the held event's device and sequence number
    seq: int
    fleet: str
    cmd_seq: int  # the stepup command's seq: the device's answer names it as cmd_seq


def _row(r: tuple[Any, ...]) -> StepUpRow:
    pending = PendingStepUp(
        str(r[0]), str(r[4]), str(r[5]), bytes(r[7]), int(r[8]), int(r[9]), Status(str(r[10]))
    )
    return StepUpRow(pending, str(r[1]), int(r[2]), str(r[3]), int(r[6]))


def primary_device(tx: Transaction, user: str) -> str | None:
    """The user's active device of the primary kind enrolled first, if any: a phone enrolled
    later for the same user (a claim token in the wrong hands, say) does not take over the
    confirmations; ties by id."""
    row = tx.fetchone(
        "SELECT device_id FROM devices WHERE user_id = ? AND kind = ? AND status = 'active' "
        "ORDER BY enrolled_ms, device_id LIMIT 1",
        (user, PRIMARY_KIND),
    )
    return None if row is None else str(row[0])


def insert(tx: Transaction, rows: Collection[StepUpRow]) -> None:
    """New pending step-ups; one opened again for the same event (a redelivery) is ignored."""
    tx.executemany(
        f"INSERT INTO stepups ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (event) DO NOTHING",
        [
            (
                r.pending.event, r.device_id, r.seq, r.fleet, r.pending.user, r.pending.primary,
                r.cmd_seq, r.pending.challenge, r.pending.opened_ms, r.pending.deadline_ms,
                r.pending.status.value,
            )
            for r in rows
        ],
    )  # fmt: skip


def answered(tx: Transaction, primary: str, cmd_seq: int) -> StepUpRow | None:
    """The pending step-up whose command this device's report answers (locked on PostgreSQL)."""
    row = tx.fetchone(
        f"SELECT {_COLS} FROM stepups WHERE primary_device = ? AND cmd_seq = ? "
        "AND status = 'pending'",
        (primary, cmd_seq),
        for_update=True,
    )
    return None if row is None else _row(row)


def owners(tx: Transaction, answers: Collection[tuple[str, int]]) -> set[str]:
    """The users of the pending step-ups these (device, cmd_seq) answers may settle: read
    without a lock, so that ingest can lock their risk memory in user order before `answered`
    locks the row (a step-up's user never changes)."""
    out: set[str] = set()
    for device, cmd_seq in sorted(set(answers)):
        row = tx.fetchone(
            "SELECT user_id FROM stepups WHERE primary_device = ? AND cmd_seq = ? "
            "AND status = 'pending'",
            (device, cmd_seq),
        )
        if row is not None:
            out.add(str(row[0]))
    return out


def due(tx: Transaction, now_ms: int, limit: int) -> list[StepUpRow]:
    """Pending step-ups whose deadline has passed, oldest first."""
    lock = " FOR UPDATE SKIP LOCKED" if tx.dialect == "postgres" else ""
    rows = tx.fetchall(
        f"SELECT {_COLS} FROM stepups WHERE status = 'pending' AND deadline_ms <= ? "
        f"ORDER BY deadline_ms LIMIT ?{lock}",
        (now_ms, limit),
    )
    return [_row(r) for r in rows]


def settle(tx: Transaction, event: str, status: Status) -> None:
    tx.execute("UPDATE stepups SET status = ? WHERE event = ?", (status.value, event))

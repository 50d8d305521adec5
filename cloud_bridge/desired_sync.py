"""The desired-state step of a batch (issue 18 item 4), beside the ingest: note the
configuration versions devices say they run and send the desired state where it differs. The
decisions are `cloud_bridge.desired`'s (pure), the SQL `store.desired_repo`'s."""

from __future__ import annotations

from cloud_bridge import desired
from cloud_bridge.outputs import Outputs, Pending
from cloud_bridge.store import desired_repo
from cloud_bridge.store.base import Transaction


def outputs(
    tx: Transaction,
    out: Outputs,
    births: list[tuple[str, str, int]],
    answers: list[tuple[str, int, str]],
    now_ms: int,
) -> list[Pending]:
    """Note the configuration versions devices run (births, "ok" answers to a versioned
    config command) and send the desired state to each device born on another version
    (cloud_bridge.desired); one read and at most two writes for the batch."""
    if not births and not answers:
        return []
    rows = desired_repo.of_devices(tx, {b[0] for b in births} | {a[0] for a in answers})
    reported: dict[str, int] = {}
    pending: list[Pending] = []
    sent: list[tuple[str, int, int]] = []
    for device, fleet, version in births:
        reported[device] = version
        row = rows.get(device)
        if row is not None and desired.must_send(row, version):
            cmd = out.command(tx, fleet, device, "config", desired.command_args(row))
            pending.append(cmd)
            sent.append((device, cmd.seq, row.desired_version))
    for device, cmd_seq, result in answers:
        confirmed = desired.confirmed_version(rows.get(device), cmd_seq, result)
        if confirmed is not None:
            reported[device] = confirmed
    changed = [
        (device, version)
        for device, version in reported.items()
        if (rows[device].reported_version if device in rows else 0) != version
    ]
    desired_repo.save_reported(tx, changed, now_ms)
    desired_repo.save_sent(tx, sent, now_ms)
    return pending

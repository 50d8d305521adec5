"""Expiring commands held for a trusted clock survive a restart (agent.held): the link has
already recorded them as seen, so a list kept only in memory would lose them for good."""

from __future__ import annotations

from pathlib import Path

from agent import held
from agent.outbox import Outbox
from protocol import messages as m

NOW = 1_764_288_000_000


def command(seq: int, name: str, expires_ms: int) -> m.Command:
    return m.Command(
        sender="bridge-1", seq=seq, boot=1, ts_ms=NOW, device="rig-1", command=name,
        expires_ms=expires_ms,
    )  # fmt: skip


def test_held_commands_survive_a_restart_and_are_judged_again(tmp_path: Path) -> None:
    live, stale, forever = (
        command(5, "ping", NOW + 60_000),
        command(6, "ping", NOW - 1),
        command(7, "ping", 0),
    )
    apply, hold, refused = held.triage([live, stale, forever], NOW, trusted=False)
    assert apply == [forever] and hold == [live, stale] and refused == []
    box = Outbox.open(tmp_path / "outbox.sqlite3")
    held.save(box, hold)
    box.close()
    box = Outbox.open(tmp_path / "outbox.sqlite3")  # the restart
    try:
        restored = held.load(box)
        assert restored == [live, stale]
        apply, hold, refused = held.triage(restored, NOW, trusted=True)
        assert apply == [live] and hold == [] and refused == [("command_expired", stale)]
        held.save(box, hold)
        assert held.load(box) == []
    finally:
        box.close()


def test_an_unreadable_held_entry_is_left_not_fatal(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path / "outbox.sqlite3")
    try:
        good = command(5, "ping", NOW + 1)
        box.put_json(held.HELD_KEY, ["zz", "a0", m.encode(good).hex()])
        assert held.load(box) == [good]
        box.put_json(held.HELD_KEY, {"not": "a list"})
        assert held.load(box) == []
    finally:
        box.close()

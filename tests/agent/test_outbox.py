from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import nacl.signing
import pytest

from agent.outbox import SEQ_BLOCK, Outbox
from protocol import cose, envelope
from protocol import messages as m

KEY = nacl.signing.SigningKey(bytes(range(32)))
SHA = bytes(32)


def resolve(kid: bytes) -> nacl.signing.VerifyKey | None:
    return KEY.verify_key if kid == cose.kid_for(KEY.verify_key) else None


def report(ts_ms: int = 1, risk_pm: int = 5) -> m.Report:
    return m.Report(
        sender="dev",
        seq=0,
        boot=1,
        ts_ms=ts_ms,
        model_id="risk-v1",
        model_sha256=SHA,
        risk_pm=risk_pm,
        features=b"\x01",
        mono_ms=ts_ms,
    )


def trigger(ts_ms: int = 1, priority: int = 255) -> m.Trigger:
    return m.Trigger(
        sender="dev",
        seq=0,
        boot=1,
        ts_ms=ts_ms,
        model_id="risk-v1",
        model_sha256=SHA,
        risk_pm=1,
        mono_ms=1,
        rule="sos",
        priority=priority,
        body=m.EmergencyBody(emergency="illness", source="explicit"),
    )


def seal(payload: bytes) -> bytes:
    return cose.sign1(payload, KEY, cose.kid_for(KEY.verify_key))


def test_numbers_are_assigned_at_transmission_emergencies_first(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path / "o.sqlite3")
    box.put(report(ts_ms=1), 0)
    box.put(report(ts_ms=2), 0)
    box.put(trigger(ts_ms=3), 255)
    sent = box.assign(10, seal)
    assert [e.seq for e in sent] == [1, 2, 3]
    decoded = [envelope.unseal(e.envelope or b"", resolve)[1] for e in sent]
    assert [(type(x).__name__, x.ts_ms) for x in decoded] == [
        ("Trigger", 3),
        ("Report", 1),
        ("Report", 2),
    ]
    assert [x.seq for x in decoded] == [1, 2, 3]


def test_ack_deletes_covered_entries_and_old_acks_do_nothing(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path / "o.sqlite3")
    for i in range(5):
        box.put(report(ts_ms=i), 0)
    box.assign(5, seal)
    assert box.ack(3) == 3
    assert [e.seq for e in box.sent_after(0, 10)] == [4, 5]
    assert box.ack(2) == 0 and box.stats().last_ack == 3
    assert box.resume_seq() == 4


def test_reopen_keeps_entries_counters_and_counts_boots(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    box = Outbox.open(path)
    box.put(report(ts_ms=1), 0)
    box.put(report(ts_ms=2), 0)
    first = box.assign(1, seal)
    session = box.next_session()
    box.close()
    again = Outbox.open(path)
    assert again.boot == 2
    assert again.next_session() == session + 1
    assert [(e.seq, e.envelope) for e in again.sent_after(0, 10)] == [
        (first[0].seq, first[0].envelope)  # a retransmission is the same bytes
    ]
    assert [e.seq for e in again.assign(5, seal)] == [2]


def test_full_outbox_thins_old_reports_and_never_drops_triggers(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path / "o.sqlite3", max_messages=100)
    for i in range(100):
        assert box.put(report(ts_ms=i), 0)
    for i in range(30):
        box.put(trigger(ts_ms=1000 + i), 255)
    assert box.put(report(ts_ms=5000), 0)
    stats = box.stats()
    assert stats.coalesced == 5  # every other one of the oldest 10 reports
    assert stats.backlog == 100 + 30 + 1 - 5
    sent = box.assign(1000, seal)
    kinds = [e.kind for e in sent]
    assert kinds.count(m.Kind.TRIGGER) == 30
    times = [
        envelope.unseal(e.envelope or b"", resolve)[1].ts_ms
        for e in sent
        if e.kind == m.Kind.REPORT
    ]
    assert times[:6] == [0, 2, 4, 6, 8, 10] and times[-1] == 5000


def test_full_outbox_of_triggers_coalesces_the_new_report(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path / "o.sqlite3", max_messages=100)
    for i in range(100):
        box.put(trigger(ts_ms=i), 255)
    assert box.put(report(), 0) is False
    assert box.stats().coalesced == 1 and box.stats().backlog == 100
    box.put(trigger(), 255)
    assert box.stats().backlog == 101


def test_corrupt_database_is_moved_aside_and_numbers_never_repeat(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "o.sqlite3"
    box = Outbox.open(path)
    for i in range(3):
        box.put(report(ts_ms=i), 0)
    used = [e.seq for e in box.assign(3, seal)]
    box.close()
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    path.write_bytes(b"this is not a database" * 100)
    with caplog.at_level(logging.WARNING):
        box = Outbox.open(path)
    assert "corrupt" in caplog.text and box.recovered_from is not None
    assert box.recovered_from.read_bytes().startswith(b"this is not")
    assert box.boot == 2
    box.put(report(), 0)
    (entry,) = box.assign(1, seal)
    assert entry.seq is not None and entry.seq > max(used)
    assert entry.seq <= max(used) + 1 + SEQ_BLOCK
    assert box.resume_seq() == entry.seq


def test_resign_changes_signatures_not_content(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path / "o.sqlite3")
    box.put(report(), 0)
    (before,) = box.assign(1, seal)
    new_key = nacl.signing.SigningKey(bytes(32))
    assert box.resign(lambda p: cose.sign1(p, new_key, cose.kid_for(new_key.verify_key))) == 1
    (after,) = box.sent_after(0, 1)
    signed, msg = envelope.unseal(after.envelope or b"", lambda kid: new_key.verify_key)
    assert msg.seq == before.seq and after.envelope != before.envelope
    assert signed.payload == envelope.unseal(before.envelope or b"", resolve)[0].payload


def test_json_state(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path / "o.sqlite3")
    assert box.get_json("x", 7) == 7
    box.put_json("x", {"a": [1, 2]})
    box.close()
    assert Outbox.open(tmp_path / "o.sqlite3").get_json("x") == {"a": [1, 2]}


def test_peek_at_an_outbox_whose_tables_are_not_created_yet(tmp_path: Path) -> None:
    # An agent that is starting has created the file but not its schema: `edge-agent status`
    # (and the fleet tools) then see "no outbox yet", not an OperationalError.
    path = tmp_path / "outbox.sqlite3"
    sqlite3.connect(path).close()
    assert path.exists()
    assert Outbox.peek(path) is None
    Outbox.open(path).close()
    stats = Outbox.peek(path)
    assert stats is not None and stats.next_seq == 1


def test_an_outbox_that_cannot_be_opened_is_not_thrown_away(tmp_path: Path) -> None:
    from agent.outbox import OutboxError

    path = tmp_path / "o.sqlite3"
    path.mkdir()  # not corrupt, just unopenable (like a permissions or I/O error)
    with pytest.raises(OutboxError, match="cannot open the outbox"):
        Outbox.open(path)
    assert path.is_dir() and not list(tmp_path.glob("*.corrupt-*"))

"""The SQL of the ingest path: device state, key statuses, the event logs, rejections, the
outbox of publications and the bridge's output counters.

Every function runs inside the caller's transaction and takes or returns values; none decides
anything. Reads of a batch take one query per `CHUNK` ids (devices, key statuses, stored
envelopes). Writes of a batch are one statement per table: `executemany` on SQLite (in process,
the statement is prepared once), and one multi-row statement per `CHUNK` rows on PostgreSQL,
where every statement executed costs the server a round of planning and executing.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from cloud_bridge.device_state import DeviceState
from cloud_bridge.risk import signals, user_signals
from cloud_bridge.risk.user_signals import UserMemory
from cloud_bridge.store.base import Column, Transaction
from cloud_bridge.store.batching import chunks, marks
from protocol.replay import ReplayWindow

log = logging.getLogger(__name__)

KEY_UNKNOWN = "unknown"
TOPIC_MAX, DETAIL_MAX, ENVELOPE_MAX = 256, 256, 8192  # what `rejections` keeps of a refusal


@dataclass(frozen=True, slots=True)
class LogRow:
    """One accepted message for the event log (`events`) or the session log (`session_events`)."""

    device_id: str
    seq: int
    kind: int
    received_ms: int
    envelope: bytes


@dataclass(frozen=True, slots=True)
class RejectionRow:
    received_ms: int
    topic: str
    device_id: str | None
    reason: str
    detail: str
    envelope: bytes


@dataclass(frozen=True, slots=True)
class OutputRow:
    """A signed publication kept until the broker has it."""

    instance: str
    seq: int
    topic: str
    payload: bytes
    retain: bool


def _pg(tx: Transaction) -> bool:
    return tx.dialect == "postgres"


def _columns(rows: Sequence[Sequence[object]], width: int) -> list[Column]:
    """Rows as one list per column: PostgreSQL takes a batch as one array per column."""
    return [Column(row[i] for row in rows) for i in range(width)]


def _unnest(types: Sequence[str]) -> str:
    """`unnest(?::text[], ?::bigint[], ...)`: a batch as rows, one array parameter a column.
    The statement text is the same for any batch size, so PostgreSQL plans it once."""
    return f"unnest({', '.join(f'?::{t}[]' for t in types)})"


def _insert(
    tx: Transaction,
    head: str,
    types: Sequence[str],
    rows: Sequence[Sequence[object]],
    tail: str = "",
) -> None:
    """`head` is `INSERT INTO t (a, b, ...)` with columns of these SQL types, `tail` an
    `ON CONFLICT ...` clause or nothing: one statement."""
    if not rows:
        return
    if _pg(tx):
        tx.execute(f"{head} SELECT * FROM {_unnest(types)}{tail}", _columns(rows, len(types)))
    else:
        # SQLite parses `VALUES (...) ON CONFLICT` (a SELECT would need a WHERE true first)
        tx.executemany(f"{head} VALUES ({marks(len(types))}){tail}", rows)


# ---- device state ------------------------------------------------------------------------------

_DEVICE_COLS = (
    "device_id, fleet, user_id, status, data_window, session_window, risk_streak, last_boot, "
    "online, kind, baseline, risk_q, risk_tamper, risk_memory"
)
TAMPER_SEP = ","


@functools.lru_cache(maxsize=4096)
def _baseline(text: str) -> Mapping[int, int]:
    """A stored baseline (JSON), parsed once per distinct text: it changes only on enrollment."""
    return MappingProxyType({int(k): int(v) for k, v in json.loads(text).items()})


def lock_devices(tx: Transaction, ids: Collection[str]) -> dict[str, DeviceState]:
    """The rows of these devices (locked on PostgreSQL); unknown ids are left out. PostgreSQL
    locks the rows in the ORDER BY order (its LockRows step runs after the sort), the same
    device-id order in every bridge, so bridges sharing a fleet never deadlock."""
    ordered = sorted(ids)
    if not ordered:
        return {}
    if _pg(tx):
        rows = tx.fetchall(
            f"SELECT {_DEVICE_COLS} FROM devices WHERE device_id = ANY(?::text[]) "
            "ORDER BY device_id FOR UPDATE",
            (Column(ordered),),
        )
    else:
        rows = []
        for chunk in chunks(ordered):
            rows += tx.fetchall(
                f"SELECT {_DEVICE_COLS} FROM devices WHERE device_id IN ({marks(len(chunk))}) "
                "ORDER BY device_id",
                chunk,
            )
    return {
        str(row[0]): DeviceState(
            str(row[0]), str(row[1]), str(row[2]), str(row[3]),
            ReplayWindow.from_bytes(bytes(row[4])), ReplayWindow.from_bytes(bytes(row[5])),
            int(row[6]), int(row[7]), bool(row[8]), str(row[9]), _baseline(str(row[10])),
            None if row[11] is None else int(row[11]),
            tuple(t for t in str(row[12]).split(TAMPER_SEP) if t),
            signals.from_json(str(row[13])),
        )
        for row in rows
    }  # fmt: skip


def save_devices(tx: Transaction, states: Iterable[DeviceState], now_ms: int) -> None:
    """Write back these devices' state, seen at `now_ms`: one statement."""
    rows = [
        (d.data.to_bytes(), d.session.to_bytes(), d.streak, d.last_boot, int(d.online), now_ms,
         d.risk_q, TAMPER_SEP.join(d.risk_tamper), signals.to_json(d.risk_memory), d.device_id)
        for d in states
    ]  # fmt: skip
    if not rows:
        return
    if not _pg(tx):
        tx.executemany(
            "UPDATE devices SET data_window = ?, session_window = ?, risk_streak = ?, "
            "last_boot = ?, online = ?, last_seen_ms = ?, risk_q = ?, risk_tamper = ?, "
            "risk_memory = ? WHERE device_id = ?",
            rows,
        )
        return
    types = (
        "bytea", "bytea", "integer", "bigint", "integer", "bigint", "integer", "text", "text",
        "text",
    )  # fmt: skip
    tx.execute(
        "UPDATE devices SET data_window = v.dw, session_window = v.sw, risk_streak = v.rs, "
        "last_boot = v.lb, online = v.ol, last_seen_ms = v.ls, risk_q = v.rq, risk_tamper = v.rt, "
        "risk_memory = v.rm "
        f"FROM {_unnest(types)} AS v (dw, sw, rs, lb, ol, ls, rq, rt, rm, id) "
        "WHERE devices.device_id = v.id",
        _columns(rows, len(types)),
    )


# ---- per-user risk memory (migration 011_user_risk) -------------------------------------------


def lock_users(tx: Transaction, ids: Collection[str]) -> dict[str, UserMemory]:
    """What the per-user risk signals remember of these users (locked on PostgreSQL, in user
    order, after the batch's devices: every bridge takes devices, then users, then pools, so
    none waits in a circle). A user with no memory yet is left out (a fresh one).

    On PostgreSQL a missing row is made first (empty: a fresh memory), so that the lock always
    has a row to hold: two bridges judging a user's first events at once then take turns,
    instead of both starting fresh and the later commit overwriting the earlier one's memory.
    (SQLite has one writer at a time.)"""
    ordered = sorted(ids)
    if not ordered:
        return {}
    if _pg(tx):
        _insert(
            tx,
            "INSERT INTO user_risk (user_id, memory, updated_ms)",
            ("text", "text", "bigint"),
            [(u, "", 0) for u in ordered],
            " ON CONFLICT (user_id) DO NOTHING",
        )
        rows = tx.fetchall(
            "SELECT user_id, memory FROM user_risk WHERE user_id = ANY(?::text[]) "
            "ORDER BY user_id FOR UPDATE",
            (Column(ordered),),
        )
    else:
        rows = []
        for chunk in chunks(ordered):
            rows += tx.fetchall(
                f"SELECT user_id, memory FROM user_risk WHERE user_id IN ({marks(len(chunk))})",
                chunk,
            )
    out = {}
    for user, text in rows:
        if not text:
            continue
        got = user_signals.read(str(text))
        if got.problem is not None:  # rare (a hand edit, a bug): worth a line each time
            log.warning("user_risk of %s: %s", user, got.problem)
        out[str(user)] = got.memory
    return out


def user_memory(tx: Transaction, user: str) -> UserMemory | None:
    """One user's risk memory, locked on PostgreSQL for an operator's change (None: the bridge
    keeps none of this user)."""
    row = tx.fetchone("SELECT memory FROM user_risk WHERE user_id = ?", (user,), for_update=True)
    if row is None:
        return None
    return user_signals.from_json(str(row[0] or ""))


def save_users(tx: Transaction, memories: Mapping[str, UserMemory], now_ms: int) -> None:
    """Write these users' risk memory: one statement (an upsert: on SQLite a user's first row
    is made here; on PostgreSQL `lock_users` made and locked it)."""
    rows = [(u, user_signals.to_json(mem), now_ms) for u, mem in sorted(memories.items())]
    _insert(
        tx,
        "INSERT INTO user_risk (user_id, memory, updated_ms)",
        ("text", "text", "bigint"),
        rows,
        " ON CONFLICT (user_id) DO UPDATE SET memory = excluded.memory, "
        "updated_ms = excluded.updated_ms",
    )


def key_statuses(tx: Transaction, kids: Collection[bytes]) -> dict[bytes, str]:
    """active, retired, revoked or unknown, per kid, read in the batch's transaction (the
    registry cache may lag a revocation made by another process)."""
    out = dict.fromkeys(kids, KEY_UNKNOWN)
    ordered = sorted(kids)
    if _pg(tx) and ordered:
        rows = tx.fetchall(
            "SELECT kid, status FROM device_keys WHERE kid = ANY(?::bytea[])", (Column(ordered),)
        )
    else:
        rows = []
        for chunk in chunks(ordered):
            rows += tx.fetchall(
                f"SELECT kid, status FROM device_keys WHERE kid IN ({marks(len(chunk))})", chunk
            )
    for kid, status in rows:
        out[bytes(kid)] = str(status)
    return out


# ---- the logs ----------------------------------------------------------------------------------


def stored_envelopes(
    tx: Transaction, wanted: Collection[tuple[str, int]]
) -> dict[tuple[str, int], bytes]:
    """The stored envelopes of these (device, seq) events, where there are any."""
    ordered = sorted(wanted)
    if not ordered:
        return {}
    if _pg(tx):
        rows = tx.fetchall(
            "SELECT e.device_id, e.seq, e.envelope FROM events e "
            f"JOIN {_unnest(('text', 'bigint'))} AS w (d, s) ON e.device_id = w.d AND e.seq = w.s",
            _columns(ordered, 2),
        )
    else:
        rows = []
        for chunk in chunks(ordered):
            rows += tx.fetchall(
                "SELECT device_id, seq, envelope FROM events WHERE (device_id, seq) IN "
                f"(VALUES {', '.join(['(?, ?)'] * len(chunk))})",
                [v for pair in chunk for v in pair],
            )
    return {(str(d), int(s)): bytes(e) for d, s, e in rows}


_LOG_TYPES = ("text", "bigint", "integer", "bigint", "bytea")


def append_events(tx: Transaction, rows: Sequence[LogRow]) -> None:
    """The batch's accepted data messages: one statement."""
    _append_log(tx, "events", rows)


def append_session_events(tx: Transaction, rows: Sequence[LogRow]) -> None:
    """The batch's accepted births and deaths: one statement."""
    _append_log(tx, "session_events", rows)


def _append_log(tx: Transaction, table: str, rows: Sequence[LogRow]) -> None:
    _insert(
        tx,
        f"INSERT INTO {table} (device_id, seq, kind, received_ms, envelope)",
        _LOG_TYPES,
        [(r.device_id, r.seq, r.kind, r.received_ms, r.envelope) for r in rows],
    )


def append_rejections(tx: Transaction, rows: Sequence[RejectionRow]) -> None:
    """Refused messages, cut to what the table keeps: one statement."""
    _insert(
        tx,
        "INSERT INTO rejections (received_ms, topic, device_id, reason, detail, envelope)",
        ("bigint", "text", "text", "text", "text", "bytea"),
        [
            (
                r.received_ms,
                r.topic[:TOPIC_MAX],
                r.device_id,
                r.reason,
                r.detail[:DETAIL_MAX],
                r.envelope[:ENVELOPE_MAX],
            )
            for r in rows
        ],
    )


# ---- the outbox of publications and the output counters ---------------------------------------


def store_outputs(tx: Transaction, rows: Sequence[OutputRow], now_ms: int) -> None:
    _insert(
        tx,
        "INSERT INTO outputs (instance, seq, topic, payload, retain, created_ms)",
        ("text", "bigint", "text", "bytea", "integer", "bigint"),
        [(r.instance, r.seq, r.topic, r.payload, int(r.retain), now_ms) for r in rows],
    )


def forget_outputs(tx: Transaction, published: Sequence[tuple[str, int]]) -> None:
    """Delete the rows of stored outputs the broker has acknowledged, (instance, seq) each:
    one statement per instance (a batch's outputs are one instance's)."""
    by_instance: dict[str, list[int]] = {}
    for instance, seq in published:
        by_instance.setdefault(instance, []).append(seq)
    for instance, seqs in by_instance.items():
        if _pg(tx):
            tx.execute(
                "DELETE FROM outputs WHERE instance = ? AND seq = ANY(?::bigint[])",
                (instance, Column(seqs)),
            )
            continue
        for chunk in chunks(seqs):
            tx.execute(
                f"DELETE FROM outputs WHERE instance = ? AND seq IN ({marks(len(chunk))})",
                [instance, *chunk],
            )


def pending_outputs(tx: Transaction, instance: str) -> list[OutputRow]:
    """This instance's stored outputs, oldest first."""
    rows = tx.fetchall(
        "SELECT instance, seq, topic, payload, retain FROM outputs WHERE instance = ? "
        "ORDER BY created_ms, seq",
        (instance,),
    )
    return [OutputRow(str(r[0]), int(r[1]), str(r[2]), bytes(r[3]), bool(r[4])) for r in rows]


_SUFFIX = re.compile(r"[A-Za-z0-9_-]{1,16}")


def operator_outputs(tx: Transaction, suffix: str, limit: int) -> list[OutputRow]:
    """Stored outputs written by operator commands (senders named `<instance><suffix>`, no
    bridge process of their own), oldest first: a running bridge adopts and publishes them."""
    if not _SUFFIX.fullmatch(suffix):
        raise ValueError(f"operator sender suffix {suffix!r} must be of [A-Za-z0-9_-]")
    # The suffix is written into the text (checked above), not bound: so the statement matches
    # the partial index outputs_operator (migration 006) and costs next to nothing when no
    # operator rows wait, which the bridge asks inside every batch that runs pool commands.
    rows = tx.fetchall(
        "SELECT instance, seq, topic, payload, retain FROM outputs"
        f" WHERE instance LIKE '%{suffix}' ORDER BY created_ms, seq LIMIT ?",
        (limit,),
    )
    return [OutputRow(str(r[0]), int(r[1]), str(r[2]), bytes(r[3]), bool(r[4])) for r in rows]


def take_output(tx: Transaction, instance: str, seq: int) -> bool:
    """Delete one stored output; False if it is gone (another bridge took it first)."""
    return tx.execute("DELETE FROM outputs WHERE instance = ? AND seq = ?", (instance, seq)) == 1


def bump_counter(tx: Transaction, name: str, by: int) -> int:
    """Add `by` to counter `name` (created at 1); returns the value before."""
    row = tx.fetchone(
        "SELECT next_seq FROM bridge_counters WHERE instance = ?", (name,), for_update=True
    )
    if row is None:
        tx.execute("INSERT INTO bridge_counters (instance, next_seq) VALUES (?, ?)", (name, 1 + by))
        return 1
    tx.execute(
        "UPDATE bridge_counters SET next_seq = ? WHERE instance = ?", (int(row[0]) + by, name)
    )
    return int(row[0])

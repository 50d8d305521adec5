"""The durable outbox: every message is committed here before it is published, and leaves only
when a bridge-signed ack covers it.

SQLite in WAL mode. Every commit survives a kill of the process. The commits that must also
survive a power cut are fsynced (`synchronous=FULL`): triggers, and the numbering of messages at
transmission, so a sequence number can never come back with other content; a periodic report or
an ack committed just before a power cut may be undone (a sample fewer, or a duplicate the
bridge drops). Messages are stored unsigned and unnumbered; a data sequence number is assigned
(and the message signed and stored again) when it is first transmitted, so the numbers on the
wire stay contiguous even though reports are coalesced and emergencies jump the queue
(docs/protocol.md section 4).

Counters (boot, next data sequence number, session) live in the database and are mirrored to a
small reservation file, so that a corrupt database, moved aside, never makes a number repeat.

Bound and policy: at `max_messages`, a new periodic report thins the oldest unsent reports
(every other one of the oldest tenth goes), which keeps the time span at a coarser grain;
triggers and emergencies are never dropped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from agent.errors import AgentError
from agent.jsonfile import write_json_atomic
from protocol import cose, messages
from protocol.messages import Message

log = logging.getLogger(__name__)

SEQ_BLOCK = 1024
"""Sequence numbers are reserved in the mirror file this many at a time."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    body BLOB NOT NULL,
    seq INTEGER UNIQUE,
    envelope BLOB
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (priority DESC, id) WHERE seq IS NULL;
"""
COUNTERS = ("boot", "next_seq", "session", "last_ack", "coalesced")


class OutboxError(AgentError):
    """The outbox cannot be opened or written."""


@dataclass(frozen=True)
class Entry:
    """One stored message. `seq` and `envelope` are set once it has been transmitted."""

    id: int
    kind: int
    priority: int
    created_ms: int
    seq: int | None
    envelope: bytes | None


@dataclass(frozen=True)
class Stats:
    backlog: int
    unsent: int
    in_flight: int
    last_ack: int
    next_seq: int
    boot: int
    session: int
    coalesced: int


class Outbox:
    """Open with `Outbox.open(path, max_messages)`; one instance per process."""

    def __init__(self, db: sqlite3.Connection, path: Path, max_messages: int) -> None:
        self._db = db
        self.path = path
        self.max_messages = max_messages
        self._mirror = path.with_name(path.name + ".counters.json")
        self.recovered_from: Path | None = None
        self._lock = threading.RLock()  # the sensing thread puts, the link thread drains
        self._durable = True
        self._boot = 0

    # ---- opening, corruption and counters -----------------------------------------------------

    @classmethod
    def open(cls, path: Path, max_messages: int = 50_000) -> Outbox:
        """Open (or create) the outbox and count a boot. A corrupt file is moved aside."""
        path.parent.mkdir(parents=True, exist_ok=True)
        moved: Path | None = None
        try:
            db = _connect(path)
        except sqlite3.DatabaseError as exc:
            if not _corrupt(exc):  # locked, I/O, permissions, disk full: not ours to discard
                raise OutboxError(f"cannot open the outbox {path}: {exc}") from exc
            moved = _move_aside(path, exc)
            db = _connect(path)
        box = cls(db, path, max_messages)
        box.recovered_from = moved
        box._start()
        return box

    @staticmethod
    def peek(path: Path) -> Stats | None:
        """Stats of an outbox without opening it for writing (no boot counted); None if absent."""
        if not path.exists():
            return None
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            box = Outbox(db, path, 0)
            return box.stats()
        except sqlite3.OperationalError as exc:
            # An agent that is starting has created the file but not its tables yet.
            if "no such table" in str(exc):
                return None
            raise
        finally:
            db.close()

    def _start(self) -> None:
        mirror = self._read_mirror()
        with self._tx() as db:
            counters = self._counters(db)
            if counters["boot"] == 0 and mirror:
                # A new database beside an old mirror: the outbox was lost or moved aside.
                # Resume above every number that may have been used; the birth certificate's
                # resume_seq tells the bridge to settle the gap.
                log.warning("outbox %s is new but counters exist; resuming above them", self.path)
                counters.update(
                    boot=mirror.get("boot", 0),
                    next_seq=mirror.get("seq_floor", 1),
                    session=mirror.get("session", 0),
                )
            boot = counters["boot"] + 1
            self._boot = boot
            next_seq = max(counters["next_seq"], 1)
            self._set(db, boot=boot, next_seq=next_seq, session=counters["session"])
        floor = max(mirror.get("seq_floor", 0), next_seq + SEQ_BLOCK)
        self._write_mirror(boot=boot, seq_floor=floor, session=counters["session"])

    def _counters(self, db: sqlite3.Connection) -> dict[str, int]:
        rows = dict(db.execute("SELECT k, v FROM meta").fetchall())
        return {k: int(rows.get(k, 0)) for k in COUNTERS}

    def _set(self, db: sqlite3.Connection, **values: int) -> None:
        db.executemany(
            "INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
            list(values.items()),
        )

    def _read_mirror(self) -> dict[str, int]:
        try:
            data = json.loads(self._mirror.read_text())
            return {k: int(v) for k, v in data.items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, AttributeError) as exc:
            log.warning("counter mirror %s unreadable (%s); using the database", self._mirror, exc)
            return {}

    def _write_mirror(self, **values: int) -> None:
        current = self._read_mirror()
        current.update(values)
        write_json_atomic(self._mirror, current)  # fsyncs the file and its directory

    @contextlib.contextmanager
    def _tx(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction. `durable=False` commits without an fsync (WAL mode: safe
        against a crash of the process; a power cut may undo it until the next durable
        commit, which makes every earlier one durable too)."""
        with self._lock:
            try:
                if durable != self._durable:
                    self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
                    self._durable = durable
                self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._db

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- counters the agent reads -------------------------------------------------------------

    @property
    def boot(self) -> int:
        """This run's boot number (fixed once the outbox is open)."""
        return self._boot

    def next_session(self) -> int:
        """A new session number (one per connect), durable before it is used."""
        with self._tx() as db:
            session = self._counters(db)["session"] + 1
            self._write_mirror(session=session)  # mirror first: it may run ahead, never behind
            self._set(db, session=session)
        return session

    # ---- messages in --------------------------------------------------------------------------

    def put(self, message: Message, priority: int) -> bool:
        """Store an unsent message (its seq is ignored). False if a full outbox coalesced it away.

        Reports (kind 3) may be coalesced; triggers are always stored.
        """
        body = _unnumbered(message)
        # A periodic report lost to a power cut is just a sample fewer; a trigger is not.
        with self._tx(durable=message.KIND != messages.Kind.REPORT) as db:
            stored = True
            if message.KIND == messages.Kind.REPORT and self._full(db):
                stored = self._thin_reports(db)
            if stored:
                db.execute(
                    "INSERT INTO outbox (kind, priority, created_ms, body) VALUES (?, ?, ?, ?)",
                    (int(message.KIND), priority, message.ts_ms, body),
                )
        return stored

    def put_triggers(self, triggers: list[tuple[Message, int]], state: dict[str, object]) -> None:
        """Store triggers (with their priorities) and the state that goes with them (the rule
        state, the explicit events consumed) in one durable transaction: after a crash either
        all of it happened or none, so a rule never fires twice for one event."""
        with self._tx() as db:
            db.executemany(
                "INSERT INTO outbox (kind, priority, created_ms, body) VALUES (?, ?, ?, ?)",
                [(int(t.KIND), p, t.ts_ms, _unnumbered(t)) for t, p in triggers],
            )
            db.executemany(
                "INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                [(k, json.dumps(v, sort_keys=True)) for k, v in state.items()],
            )

    def _full(self, db: sqlite3.Connection) -> bool:
        (count,) = db.execute("SELECT count(*) FROM outbox").fetchone()
        return bool(count >= self.max_messages)

    def _thin_reports(self, db: sqlite3.Connection) -> bool:
        oldest = [
            row[0]
            for row in db.execute(
                "SELECT id FROM outbox WHERE seq IS NULL AND kind = ? ORDER BY id LIMIT ?",
                (int(messages.Kind.REPORT), max(2, self.max_messages // 10)),
            )
        ]
        doomed = oldest[1::2]
        coalesced = self._counters(db)["coalesced"]
        if not doomed:  # nothing left to thin: the new report is the one coalesced away
            self._set(db, coalesced=coalesced + 1)
            return False
        db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in doomed])
        self._set(db, coalesced=coalesced + len(doomed))
        return True

    # ---- messages out -------------------------------------------------------------------------

    def assign(self, limit: int, sign: Callable[[bytes], bytes]) -> list[Entry]:
        """Number, sign and store up to `limit` unsent messages, emergencies first, in one
        durable transaction. `sign` makes the envelope of an encoded payload."""
        if limit <= 0:
            return []
        out: list[Entry] = []
        with self._tx() as db:
            rows = db.execute(
                "SELECT id, kind, priority, created_ms, body FROM outbox WHERE seq IS NULL "
                "ORDER BY priority DESC, id LIMIT ?",
                (limit,),
            ).fetchall()
            if not rows:
                return []
            seq = self._counters(db)["next_seq"]
            for row_id, kind, priority, created_ms, body in rows:
                envelope = sign(messages.with_seq(body, seq))  # no decode, no re-encode
                out.append(Entry(row_id, kind, priority, created_ms, seq, envelope))
                seq += 1
            db.executemany(
                "UPDATE outbox SET seq = ?, envelope = ? WHERE id = ?",
                [(e.seq, e.envelope, e.id) for e in out],
            )
            floor = self._read_mirror().get("seq_floor", 0)
            if seq > floor:
                self._write_mirror(seq_floor=seq + SEQ_BLOCK)
            self._set(db, next_seq=seq)
        return out

    def sent_after(self, after_seq: int, limit: int) -> list[Entry]:
        """Numbered messages above `after_seq`, in sequence order (for retransmission)."""
        with self._read() as db:
            rows = db.execute(
                "SELECT id, kind, priority, created_ms, seq, envelope FROM outbox "
                "WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        return [Entry(*row) for row in rows]

    def ack(self, ack_seq: int) -> int:
        """Delete every numbered message <= ack_seq; returns how many went. Older acks no-op."""
        # An ack undone by a power cut only means the bridge sees a duplicate, which it drops.
        with self._tx(durable=False) as db:
            if ack_seq <= self._counters(db)["last_ack"]:
                return 0
            cur = db.execute("DELETE FROM outbox WHERE seq IS NOT NULL AND seq <= ?", (ack_seq,))
            self._set(db, last_ack=ack_seq)
            return cur.rowcount

    def resign(self, sign: Callable[[bytes], bytes], keep_kid: bytes | None = None) -> int:
        """Sign numbered, unacked messages again (after a key rotation), all of them or those
        not signed by `keep_kid`. Same seq, same payload: the bridge sees a duplicate at most,
        never different content. Returns how many were re-signed."""
        with self._tx() as db:
            rows = db.execute("SELECT id, envelope FROM outbox WHERE seq IS NOT NULL").fetchall()
            changed = [
                (sign(cose.peek_payload(envelope)), row_id)
                for row_id, envelope in rows
                if keep_kid is None or cose.peek_kid(envelope) != keep_kid
            ]
            db.executemany("UPDATE outbox SET envelope = ? WHERE id = ?", changed)
        return len(changed)

    def resume_seq(self) -> int:
        """Lowest data sequence number this device may still send (for the birth certificate)."""
        with self._read() as db:
            (low,) = db.execute("SELECT min(seq) FROM outbox WHERE seq IS NOT NULL").fetchone()
            return int(low) if low is not None else self._counters(db)["next_seq"]

    def stats(self) -> Stats:
        with self._read() as db:
            c = self._counters(db)
            (backlog,) = db.execute("SELECT count(*) FROM outbox").fetchone()
            (unsent,) = db.execute("SELECT count(*) FROM outbox WHERE seq IS NULL").fetchone()
        return Stats(
            backlog=backlog,
            unsent=unsent,
            in_flight=backlog - unsent,
            last_ack=c["last_ack"],
            next_seq=c["next_seq"],
            boot=c["boot"],
            session=c["session"],
            coalesced=c["coalesced"],
        )

    # ---- small durable key/value state (trigger rule state, command windows, overrides) -------

    def get_json(self, key: str, default: object = None) -> object:
        with self._read() as db:
            row = db.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def put_json(self, key: str, value: object) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                (key, json.dumps(value, sort_keys=True)),
            )

    def put_state(self, docs: dict[str, object]) -> None:
        """Several key/value entries in one durable transaction (all or none after a crash)."""
        with self._tx() as db:
            db.executemany(
                "INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                [(k, json.dumps(v, sort_keys=True)) for k, v in docs.items()],
            )


def _unnumbered(message: Message) -> bytes:
    """The message encoded with seq 0: the outbox numbers it when it is first transmitted.
    (The agent makes messages with seq 0 already; only then is the copy skipped.)"""
    return messages.encode(message if message.seq == 0 else replace(message, seq=0))


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, timeout=10, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        (result,) = db.execute("PRAGMA quick_check").fetchone()
        if result != "ok":
            raise sqlite3.DatabaseError(f"quick_check: {result}")
        db.executescript(SCHEMA)
    except sqlite3.DatabaseError:
        db.close()
        raise
    return db


SQLITE_CORRUPT, SQLITE_NOTADB = 11, 26


def _corrupt(exc: sqlite3.DatabaseError) -> bool:
    """Only a file SQLite calls corrupt (or not a database), or one that fails quick_check,
    is moved aside; every other error keeps the outbox and its backlog where they are."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code in (SQLITE_CORRUPT, SQLITE_NOTADB) or str(exc).startswith("quick_check")


def _move_aside(path: Path, exc: Exception) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        src = Path(str(path) + suffix)
        if src.exists():
            os.replace(src, Path(str(target) + suffix))
    log.warning(
        "outbox %s is corrupt (%s); moved aside to %s and started a new one", path, exc, target
    )
    return target

"""The send window: the agent's flow control as a pure state machine.

No I/O, no clock, no threads: `agent.link` feeds it the paho events, `agent.sender` carries
out what it returns against the outbox, and the link publishes what the sender hands it.
Written in the subset of Python that MicroPython runs (no dataclasses, enum, typing or
__future__ at run time), so the ESP32 firmware can use the same module;
tests/agent/test_window.py runs its scenario under MicroPython too.

Numbers. A data message gets its sequence number when it is first transmitted, not when it is
stored (agent.outbox `assign`), so the numbers on the wire stay contiguous while reports are
coalesced and emergencies jump the queue. The window keeps four edges, always
`acked_stored <= acked <= numbered_hi` and `sent_hi <= numbered_hi`:

- `numbered_hi`: the highest number given out (the outbox's next_seq - 1);
- `acked`: the highest end-to-end ack of the bridge (cumulative, docs/protocol.md section 5);
- `acked_stored`: the highest ack applied to the outbox (those messages are deleted);
- `sent_hi`: the highest number published in this session.

States. Disconnected (nothing is sent); connected with the bridge offline (acks are applied,
nothing is sent: Sparkplug-style host state gating); connected with the bridge online
(draining: resend what is numbered but not sent in this session, then number more).

Events (methods) and the effects they return:

- `on_connected(now_ms, next_seq, resume_seq, last_ack)`: a new session. Every unacked message is
  sent again; the bridge counts as offline until its (retained) state arrives.
- `on_disconnected()`.
- `on_bridge_state(sender, boot, seq, online, now_ms)`: True if taken; False for a state older
  than one already taken from that bridge instance, ordered by (boot, seq): a replayed old last
  will or "offline" never overrides a newer "online" (docs/protocol.md section 5). Only
  verified states come here: the link drops empty, unsigned and foreign-signed ones.
- `on_ack(seq, now_ms)`: True if the ack moved the window. An ack beyond what was numbered is
  believed only up to `numbered_hi`.
- `on_puback(mid)`: the broker has a publish; it no longer counts against `inflight_max`.
- `plan()`: the next drain step, a `Plan`: publish the numbers `publish_lo..publish_hi` (they
  are numbered already: resends, or numbered ahead), or number up to `number` new messages (a
  whole window at once: one durable commit per window, not per message), or nothing. At most
  `inflight_max` publishes wait for a PUBACK and at most `window` (64, the bridge's replay
  window) numbers are beyond the last ack, so no message can fall out of the bridge's window.
  The caller reports back with `numbered(first, last)` and `sent(publish_hi, pairs)`.
- `tick(now_ms, force_flush)`: a `Tick`: the ack to persist (`persist_ack`, at most every
  `ack_flush_ms`: acks are cumulative, so one delete covers many, and a crash in between only
  means harmless resends; the caller confirms with `persisted`) and whether acks stopped coming
  for `ack_timeout_ms` (`timed_out`: resend everything after the last ack).

Draining on acks. The bridge state is a retained message, so whoever can publish on the broker
can delete it or put garbage there; the link ignores those, but then no valid state may arrive
at all. A session that has taken no valid bridge state for `state_timeout_ms` therefore drains
anyway, paced by the bridge's own end-to-end acks (which are signed and cannot be faked): it
starts with a single probe beyond the last ack, opens the whole window once an ack moves it,
and falls back to one probe per ack timeout when acks stop. `mode` says which of `online`,
`on_acks`, `gated` or `disconnected` applies (the agent's status shows it). A valid state ends
it (online: normal draining; offline: gated again, and the timer starts over).

Invariants (tests/agent/test_window_sim.py checks them after every step of a seeded simulation
with loss, duplication, reordering, reconnects, bridge outages and SIGKILL): a number is never
given to two contents (with the outbox, which numbers durably); numbers on the wire stay
contiguous; nothing is published beyond `acked + window`, above `numbered_hi`, with more than
`inflight_max` PUBACKs outstanding, or before the bridge said online in this session unless no
valid state came for `state_timeout_ms` (then beyond `acked + 1` only while acks move);
nothing acked is published again; nothing unacked is deleted (only `acked` is persisted, and
`acked <= numbered_hi`).
"""

ACK_FLUSH_MS = 100
"""Acks are applied to the outbox (a delete) at most this often."""

STATE_TIMEOUT_MS = 60_000
"""Without a valid bridge state for this long, a session drains on acks (module docstring);
the agent's [mqtt] bridge_state_timeout_s sets it."""

MODE_DISCONNECTED = "disconnected"
MODE_GATED = "gated"
MODE_ONLINE = "online"
MODE_ON_ACKS = "on_acks"


class Plan:
    """One drain step: publish `publish_lo..publish_hi`, or number up to `number` messages, or
    nothing (`idle`)."""

    __slots__ = ("number", "publish_hi", "publish_lo")

    def __init__(self, publish_lo: int = 0, publish_hi: int = 0, number: int = 0) -> None:
        self.publish_lo = publish_lo
        self.publish_hi = publish_hi
        self.number = number

    @property
    def idle(self) -> bool:
        return self.publish_hi == 0 and self.number == 0

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Plan)
            and self.publish_lo == other.publish_lo
            and self.publish_hi == other.publish_hi
            and self.number == other.number
        )

    def __repr__(self) -> str:
        lo, hi, n = self.publish_lo, self.publish_hi, self.number
        return f"Plan(publish_lo={lo}, publish_hi={hi}, number={n})"


IDLE = Plan()


class Tick:
    """What time alone asks for: persist the ack `persist_ack` (0: nothing to persist), and
    whether acks timed out (the window went back to the last ack: everything after it is sent
    again)."""

    __slots__ = ("persist_ack", "timed_out")

    def __init__(self, persist_ack: int = 0, timed_out: bool = False) -> None:
        self.persist_ack = persist_ack
        self.timed_out = timed_out

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Tick)
            and self.persist_ack == other.persist_ack
            and self.timed_out == other.timed_out
        )

    def __repr__(self) -> str:
        return f"Tick(persist_ack={self.persist_ack}, timed_out={self.timed_out})"


class SendWindow:
    """The flow-control state of one agent run (see the module docstring)."""

    def __init__(
        self,
        window: int,
        inflight_max: int,
        ack_timeout_ms: int,
        ack_flush_ms: int = ACK_FLUSH_MS,
        state_timeout_ms: int = STATE_TIMEOUT_MS,
    ) -> None:
        if window < 1 or inflight_max < 1 or ack_timeout_ms < 1 or ack_flush_ms < 0:
            raise ValueError("window, inflight_max and ack_timeout_ms must be positive")
        if state_timeout_ms < 1:
            raise ValueError("state_timeout_ms must be positive")
        self.window = window
        self.inflight_max = inflight_max
        self.ack_timeout_ms = ack_timeout_ms
        self.ack_flush_ms = ack_flush_ms
        self.state_timeout_ms = state_timeout_ms
        self.connected = False
        self.bridge_online = False
        self.bridge_newest: dict[str, tuple[int, int]] = {}  # newest (boot, seq) per instance
        self.last_state_ms = 0  # when this session took a valid state (or connected)
        self.on_acks = False  # no valid state for state_timeout_ms: draining on acks
        self.probe_only = False  # on acks, and no ack moved the window since the last probe
        self.numbered_hi = 0
        self.acked = 0
        self.acked_stored = 0
        self.sent_hi = 0
        self.sent_ever = 0  # highest number ever published by this run (to count resends)
        self.inflight: set[int] = set()  # MQTT packet ids waiting for a PUBACK
        self.published = 0
        self.retransmitted = 0
        self.last_progress_ms = 0
        self.last_flush_ms: int | None = None

    # ---- events -------------------------------------------------------------------------------

    def on_connected(self, now_ms: int, next_seq: int, resume_seq: int, last_ack: int) -> None:
        """A new session; the arguments are the outbox's counters. Everything below
        `resume_seq` is acked or abandoned: the window starts there and every unacked message
        is sent again."""
        self.connected = True
        self.bridge_online = False  # until the (retained) bridge state arrives again
        self.inflight = set()
        self.numbered_hi = next_seq - 1
        self.acked = max(self.acked, resume_seq - 1, last_ack)
        self.acked_stored = max(self.acked_stored, last_ack)
        self.sent_hi = self.acked
        self.last_progress_ms = now_ms
        self.last_state_ms = now_ms
        self.on_acks = False
        self.probe_only = False

    def on_disconnected(self) -> None:
        self.connected = False
        self.bridge_online = False
        self.on_acks = False

    def on_bridge_state(self, sender: str, boot: int, seq: int, online: bool, now_ms: int) -> bool:
        """Take a verified bridge state; False (ignored) if it is older, by (boot, seq), than
        one already taken from that bridge instance. The same state again is taken (a bridge
        re-announces by publishing its announcement again)."""
        key = (boot, seq)
        if key < self.bridge_newest.get(sender, (0, 0)):
            return False
        self.bridge_newest[sender] = key
        self.bridge_online = online
        self.last_state_ms = now_ms
        self.on_acks = False
        self.probe_only = False
        return True

    @property
    def mode(self) -> str:
        """disconnected, gated, online or on_acks (see the module docstring)."""
        if not self.connected:
            return MODE_DISCONNECTED
        if self.bridge_online:
            return MODE_ONLINE
        return MODE_ON_ACKS if self.on_acks else MODE_GATED

    def on_ack(self, seq: int, now_ms: int) -> bool:
        """Take a verified end-to-end ack; True if it moved the window."""
        seq = min(seq, self.numbered_hi)  # never believe an ack beyond what was numbered
        if seq <= self.acked:
            return False
        self.acked = seq
        self.last_progress_ms = now_ms
        self.probe_only = False  # the bridge is alive: on acks, the whole window opens
        return True

    def on_puback(self, mid: int) -> None:
        self.inflight.discard(mid)

    # ---- draining -----------------------------------------------------------------------------

    def plan(self) -> Plan:
        """The next drain step (IDLE when disconnected, gated or at a limit)."""
        if not self.connected or not (self.bridge_online or self.on_acks):
            return IDLE
        limit_hi = self.acked + (1 if self.probe_only else self.window)
        lo = max(self.sent_hi, self.acked) + 1  # an acked message is never sent again
        budget = min(self.inflight_max - len(self.inflight), limit_hi - lo + 1)
        if budget <= 0:
            return IDLE
        if lo <= self.numbered_hi:
            return Plan(publish_lo=lo, publish_hi=min(lo + budget - 1, self.numbered_hi))
        return Plan(number=limit_hi - self.numbered_hi)

    def numbered(self, first: int, last: int) -> None:
        """The outbox numbered `first..last` (after a `Plan.number`)."""
        if first != self.numbered_hi + 1 or last < first:
            want = self.numbered_hi + 1
            raise ValueError(f"numbered {first}..{last}, expected to start at {want}")
        self.numbered_hi = last

    def sent(self, through: int, pairs: list[tuple[int, int]]) -> None:
        """The numbers up to `through` are published in this session; `pairs` are the
        (seq, mid) of the publishes made (fewer than planned only if the outbox lacked some)."""
        for seq, mid in pairs:
            self.inflight.add(mid)
            if seq <= self.sent_ever:
                self.retransmitted += 1
        self.published += len(pairs)
        self.sent_hi = max(self.sent_hi, through)
        self.sent_ever = max(self.sent_ever, self.sent_hi)

    # ---- time ---------------------------------------------------------------------------------

    def tick(self, now_ms: int, force_flush: bool = False) -> Tick:
        if (
            self.connected
            and not self.bridge_online
            and not self.on_acks
            and now_ms - self.last_state_ms >= self.state_timeout_ms
        ):
            self.on_acks = True  # start with one probe: only an ack opens the window
            self.probe_only = True
        persist = 0
        if self.acked > self.acked_stored and (
            force_flush
            or self.last_flush_ms is None
            or now_ms - self.last_flush_ms >= self.ack_flush_ms
        ):
            persist = self.acked
        timed_out = False
        if (
            self.connected
            and self.sent_hi > self.acked
            and now_ms - self.last_progress_ms > self.ack_timeout_ms
        ):
            self.sent_hi = self.acked
            self.last_progress_ms = now_ms
            timed_out = True
            if self.on_acks:
                self.probe_only = True  # acks stopped: one probe per ack timeout
        return Tick(persist, timed_out)

    def persisted(self, ack_seq: int, now_ms: int) -> None:
        """The outbox applied the ack `ack_seq` (after a `Tick.persist_ack`)."""
        self.acked_stored = max(self.acked_stored, ack_seq)
        self.last_flush_ms = now_ms

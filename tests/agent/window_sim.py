"""A simulated broker and bridge around the real send window and the real outbox.

The device is what the link is without paho: `agent.window.SendWindow` driven by
`agent.sender.Sender` on a real `agent.outbox.Outbox` (SQLite in a temporary directory). The
broker holds the device's publishes for the bridge, the bridge's acks for the device and the
PUBACKs; faults act on those queues: loss, duplication, reordering, lost acks, reconnects, the
bridge going offline and online (new boots, replayed stale states) and SIGKILL of the device
(the outbox is closed and opened again, and a new window starts from what it persisted).

The broker is hostile too: whoever can publish replays the bridge's earlier states (old
"offline"s and last wills, retained), or leaves an empty or foreign-signed retained state
(which the link drops: it never reaches the window). The bridge answers what it sees on its
state topic by publishing its announcement again, unless that answer is lost
(`Faults.reannounce_loss`); a device that then has no valid state drains on acks.

The bridge is a plain model: the real replay rule (protocol.replay, the bridge's own) plus a
dict of what it stored, acking the contiguous edge as docs/protocol.md section 5 says.

`check()` holds the invariants; the tests call it after every step.
"""

from __future__ import annotations

import random
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import nacl.signing

from agent.outbox import Entry, Outbox
from agent.sender import Sender
from agent.window import ACK_FLUSH_MS, MODE_ON_ACKS, SendWindow
from protocol import cose
from protocol import messages as m
from protocol.errors import Reason
from protocol.replay import WINDOW, ReplayWindow

INFLIGHT_MAX = 8
ACK_TIMEOUT_MS = 10_000
STATE_TIMEOUT_MS = 30_000
BRIDGE = "bridge"
EMPTY, FOREIGN = "empty", "foreign"  # what an attacker puts on the state topic, unsigned
State = tuple[int, int, bool]  # (boot, seq, online), signed by the bridge
KEY = nacl.signing.SigningKey(bytes(range(32)))
KID = cose.kid_for(KEY.verify_key)


def sign(payload: bytes) -> bytes:
    return cose.sign1(payload, KEY, KID)


def report(msg_id: int) -> m.Report:
    """A report whose ts_ms is its identity (the outbox keeps it as created_ms)."""
    return m.Report(
        sender="sim-device",
        seq=0,
        boot=1,
        ts_ms=msg_id,
        model_id="m",
        model_sha256=bytes(32),
        risk_pm=msg_id % 1000,
        features=b"",
        mono_ms=msg_id,
    )


class InvariantBroken(AssertionError):
    pass


@dataclass
class Faults:
    """Probabilities of each fault, per opportunity."""

    loss: float = 0.05
    duplicate: float = 0.1
    reorder: float = 0.3
    ack_loss: float = 0.1
    reannounce_loss: float = 0.3  # the bridge's answer to a hostile state does not arrive

    @classmethod
    def none(cls) -> Faults:
        return cls(0.0, 0.0, 0.0, 0.0, 0.0)


@dataclass
class Bridge:
    """The bridge's data path: accept each number once (the real replay rule), ack the edge."""

    window: ReplayWindow = field(default_factory=ReplayWindow)
    stored: dict[int, bytes] = field(default_factory=dict)  # seq -> payload
    stored_ids: set[int] = field(default_factory=set)  # the reports' identities (ts_ms)
    stored_edge: int = 0  # every number up to here is stored
    online: bool = True
    boot: int = 1
    state_seq: int = 0  # the bridge's own numbering (one counter per instance)
    announcement: State = (0, 0, True)  # this session's "online"
    will: State = (0, 0, False)  # this session's last will: numbered after the announcement

    def new_session(self) -> None:
        """Number the session's announcement and its will together, the will last, so that
        every earlier offline is older than the announcement and the will is newer."""
        self.announcement = (self.boot, self.state_seq + 1, True)
        self.will = (self.boot, self.state_seq + 2, False)
        self.state_seq += 2

    def receive(self, envelope: bytes) -> int:
        """Take one data message; the ack it answers with (a duplicate gets the current one)."""
        payload = cose.peek_payload(envelope)
        seq = m.decode(payload).seq
        verdict = self.window.verdict(seq)
        if verdict is None:
            self.window = self.window.accept(seq)
            self.stored[seq] = payload
            self.stored_ids.add(m.decode(payload).ts_ms)
            while self.stored_edge + 1 in self.stored:
                self.stored_edge += 1
        elif verdict is Reason.STALE and seq not in self.stored:
            raise InvariantBroken(f"seq {seq} fell out of the bridge's window unseen")
        elif self.stored.get(seq) not in (None, payload):
            raise InvariantBroken(f"seq {seq} reached the bridge with other content")
        return self.window.contiguous


class Device:
    """One run of the agent process: a window and a sender on the outbox file."""

    def __init__(self, path: Path) -> None:
        self.outbox = Outbox.open(path, max_messages=1_000_000)  # no coalescing here
        self.window = SendWindow(
            WINDOW, INFLIGHT_MAX, ACK_TIMEOUT_MS, state_timeout_ms=STATE_TIMEOUT_MS
        )
        self.sender = Sender(self.window, self.outbox, sign)


class Sim:
    """The whole world; every public method is one step."""

    def __init__(self, directory: Path, seed: int, faults: Faults | None = None) -> None:
        self.rng = random.Random(seed)
        self.faults = faults or Faults()
        self.path = directory / "outbox.sqlite3"
        self.device = Device(self.path)
        self.reader = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        self.bridge = Bridge()
        self.bridge.new_session()
        self.now_ms = 0
        self.next_id = 1
        self.put_ids: set[int] = set()
        self.wire: dict[int, bytes] = {}  # every number ever published -> its payload
        self.to_bridge: list[bytes] = []  # on the broker, for the bridge
        self.to_device: list[int] = []  # acks on the broker, for the device's session
        self.pubacks: list[int] = []
        self.next_mid = 1
        self.connected = False
        self.said: list[State] = [self.bridge.announcement]  # every state the bridge published
        self.retained: State | str = self.bridge.announcement  # on the state topic
        self.states: list[State | str] = []  # on the way to the device
        self.believed_online = False  # the last bridge state the device took in this session
        self.newest_taken = (0, 0)  # the newest (boot, seq) this process took
        self.last_valid_ms = 0  # when this session took a valid state (or connected)
        self.ack_moved = False  # an ack moved the window since then or since an ack timeout
        self.log: list[str] = []  # the last 30 events, for a failure's message
        self.seen: Counter[str] = Counter()  # every kind of event, to check the coverage

    # ---- steps --------------------------------------------------------------------------------

    def put(self, n: int) -> None:
        for _ in range(n):
            self.device.outbox.put(report(self.next_id), 0)
            self.put_ids.add(self.next_id)
            self.next_id += 1
        self.note(f"put {n}")

    def connect(self) -> None:
        if self.connected:
            return
        self.connected = True
        self.pubacks.clear()
        self.device.outbox.next_session()
        self.device.sender.connected(self.now_ms)
        # The retained bridge state arrives on every subscribe, as a message like any other.
        self.states = [self.retained]
        self.believed_online = False
        self.last_valid_ms = self.now_ms
        self.ack_moved = False
        self.note("connect")

    def disconnect(self) -> None:
        self.connected = False
        self.pubacks.clear()  # PUBACKs of the old connection never come
        self.states.clear()
        self.device.window.on_disconnected()
        self.note("disconnect")

    def kill(self) -> None:
        """SIGKILL: the process and its memory go; the outbox file stays; it starts again."""
        self.device.outbox.close()
        self.connected = False
        self.pubacks.clear()
        self.states.clear()
        self.newest_taken = (0, 0)
        self.device = Device(self.path)
        self.note("kill")

    def bridge_offline(self) -> None:
        """The bridge's session ends: its last will (or its clean "offline") is published."""
        if not self.bridge.online:
            return
        self.bridge.online = False
        self.said.append(self.bridge.will)
        self.publish_state(self.bridge.will)
        self.note("bridge offline")

    def bridge_online(self, restart: bool) -> None:
        """A new session of the bridge (a new process with `restart`): it announces itself."""
        if restart:
            self.bridge.boot += 1
        self.bridge.new_session()
        self.bridge.online = True
        self.said.append(self.bridge.announcement)
        self.publish_state(self.bridge.announcement)
        self.note(f"bridge online (boot {self.bridge.boot})")

    def replay_stale_state(self) -> None:
        """An attacker replays one of the bridge's earlier states, retained."""
        state = self.rng.choice(self.said)
        self.publish_state(state)
        self.note(f"stale state boot {state[0]} online {state[2]}")

    def hostile_state(self) -> None:
        """An attacker leaves an empty or a foreign-signed retained state."""
        what = self.rng.choice((EMPTY, FOREIGN))
        self.publish_state(what)
        self.note(f"hostile {what}")

    def publish_state(self, state: State | str) -> None:
        """A retained publish on the state topic; a running bridge sees it too, and answers
        anything but its own current announcement by publishing that again."""
        self.retained = state
        if self.connected:
            self.states.append(state)
        b = self.bridge
        if b.online and state != b.announcement:
            if self.rng.random() < self.faults.reannounce_loss:
                self.note("re-announcement lost")
                return
            self.publish_state(b.announcement)

    def advance(self, ms: int) -> None:
        self.now_ms += ms
        self.note(f"+{ms} ms")

    def run_device(self) -> None:
        """One pass of the link's loop: drain, then tick."""
        if not self.connected:
            return
        self.device.sender.drain(self.publish)
        was = self.device.window.mode
        if self.device.sender.tick(self.now_ms).timed_out:
            self.ack_moved = False
            self.note("ack timeout")
        if self.device.window.mode == MODE_ON_ACKS and was != MODE_ON_ACKS:
            self.note("on acks, draining")

    def deliver_to_bridge(self) -> None:
        if not self.to_bridge or not self.bridge.online:
            return
        f = self.faults
        i = self.rng.randrange(len(self.to_bridge)) if self.rng.random() < f.reorder else 0
        envelope = self.to_bridge[i] if self.rng.random() < f.duplicate else self.to_bridge.pop(i)
        if self.rng.random() < f.loss:
            self.note("message lost")
            return
        ack = self.bridge.receive(envelope)
        if self.rng.random() >= f.ack_loss:
            self.to_device.append(ack)
        else:
            self.note("ack lost")

    def deliver_to_device(self) -> None:
        if not self.connected:
            return
        for _ in range(self.rng.randint(0, len(self.pubacks))):  # the broker's PUBACKs
            i = self.rng.randrange(len(self.pubacks))
            self.device.window.on_puback(self.pubacks.pop(i))
        if self.to_device:
            i = self.rng.randrange(len(self.to_device)) if self.rng.random() < 0.3 else 0
            if self.device.window.on_ack(self.to_device.pop(i), self.now_ms):
                self.ack_moved = True
        if self.states:  # one topic: in order
            self.state_to_device(self.states.pop(0))

    def state_to_device(self, state: State | str) -> None:
        if isinstance(state, str):
            return  # empty or foreign-signed: the link drops it, the window never sees it
        boot, seq, online = state
        taken = self.device.window.on_bridge_state(BRIDGE, boot, seq, online, self.now_ms)
        if taken != ((boot, seq) >= self.newest_taken):
            verb = "taken" if taken else "refused"
            raise InvariantBroken(f"state {state} {verb}; the newest taken was {self.newest_taken}")
        if taken:
            self.newest_taken = (boot, seq)
            self.believed_online = online
            self.last_valid_ms = self.now_ms
            self.ack_moved = False

    # ---- the device's publish -----------------------------------------------------------------

    def publish(self, entry: Entry) -> int:
        seq, envelope = entry.seq, entry.envelope
        assert seq is not None and envelope is not None
        w = self.device.window
        payload = cose.peek_payload(envelope)
        if self.wire.setdefault(seq, payload) != payload:
            raise InvariantBroken(f"seq {seq} published with other content")
        if m.decode(payload).seq != seq:
            raise InvariantBroken(f"entry {seq} carries another number")
        if seq <= w.acked or seq <= self.device.outbox.stats().last_ack:
            raise InvariantBroken(f"seq {seq} resent after the ack of {w.acked}")
        if seq > w.acked + WINDOW:
            raise InvariantBroken(f"seq {seq} beyond the window of the ack {w.acked}")
        if not self.believed_online:
            if self.now_ms - self.last_valid_ms < STATE_TIMEOUT_MS:
                raise InvariantBroken(f"seq {seq} published before the bridge said online")
            if seq > w.acked + 1 and not self.ack_moved:
                raise InvariantBroken(f"seq {seq} beyond a probe, on acks, without an ack")
        if len(w.inflight) >= INFLIGHT_MAX:
            raise InvariantBroken(f"more than {INFLIGHT_MAX} publishes waiting for a PUBACK")
        self.to_bridge.append(envelope)
        mid, self.next_mid = self.next_mid, self.next_mid % 65535 + 1
        self.pubacks.append(mid)
        return mid

    # ---- invariants ---------------------------------------------------------------------------

    def check(self) -> None:
        w = self.device.window
        stats = self.device.outbox.stats()
        hi = max(self.wire, default=0)
        if len(self.wire) != hi:
            missing = sorted(set(range(1, hi + 1)) - set(self.wire))[:5]
            raise InvariantBroken(f"numbers on the wire are not contiguous: {missing} missing")
        if not w.acked_stored <= w.acked <= w.numbered_hi or w.sent_hi > w.numbered_hi:
            raise InvariantBroken(f"window edges out of order: {vars(w)}")
        if self.connected and w.numbered_hi != stats.next_seq - 1:
            raise InvariantBroken(f"window numbered {w.numbered_hi}, outbox {stats.next_seq - 1}")
        for ack in (stats.last_ack, w.acked):
            if ack > self.bridge.stored_edge:
                raise InvariantBroken(f"ack {ack} covers {self.bridge.stored_edge + 1}, not stored")
        present = {row[0] for row in self.reader.execute("SELECT created_ms FROM outbox")}
        lost = self.put_ids - present - self.bridge.stored_ids
        if lost:
            raise InvariantBroken(f"deleted before the bridge stored them: {sorted(lost)[:5]}")

    def settle(self, reconnect: bool) -> None:
        """The faults stop and the bridge comes online: everything is delivered, acked and gone
        from the outbox. With `reconnect`, the link reconnects and time stays below the ack
        timeout (the resend on a new session must do it); without, the session goes on and
        time runs (the resend after an ack timeout must do it)."""
        self.faults = Faults.none()
        if not self.bridge.online:
            self.bridge_online(restart=False)
        if self.retained != self.bridge.announcement:
            self.publish_state(self.bridge.announcement)  # the bridge sees what is there
        if reconnect and self.connected:
            self.disconnect()
        self.connect()
        step_ms = ACK_FLUSH_MS if reconnect else ACK_TIMEOUT_MS // 4
        rounds = (ACK_TIMEOUT_MS - 1) // step_ms if reconnect else 200
        for _ in range(rounds):
            self.pump()
            self.check()
            self.advance(step_ms)
            self.run_device()  # the ack flush
            if self.device.outbox.stats().backlog == 0:
                break
        self.check_delivered()

    def pump(self) -> None:
        """Run the device and deliver everything in flight, both ways, until nothing moves."""
        for _ in range(1_000):
            self.run_device()
            if not (self.to_bridge or self.to_device or self.pubacks or self.states):
                break
            while self.to_bridge:
                self.deliver_to_bridge()
            while self.to_device or self.pubacks or self.states:
                self.deliver_to_device()

    def settle_on_acks(self) -> None:
        """The faults stop and the bridge is online, but an attacker's retained state stays on
        the topic and the bridge's answers never arrive: the device, reconnecting, sees no valid
        state and must deliver everything paced by the acks alone."""
        self.faults = Faults.none()
        if not self.bridge.online:
            self.bridge_online(restart=False)
        self.faults.reannounce_loss = 1.0
        self.publish_state(FOREIGN)
        if self.connected:
            self.disconnect()
        self.connect()
        for _ in range(400):
            self.pump()
            self.check()
            self.advance(ACK_TIMEOUT_MS // 4)
            self.run_device()
            if self.device.outbox.stats().backlog == 0:
                break
        if self.believed_online:
            raise InvariantBroken("the device took a state nobody valid published")
        self.check_delivered()

    def check_delivered(self) -> None:
        missing = self.put_ids - self.bridge.stored_ids
        backlog = self.device.outbox.stats().backlog
        if missing or backlog:
            raise InvariantBroken(f"not delivered: {sorted(missing)[:5]}, backlog {backlog}")

    def close(self) -> None:
        self.reader.close()
        self.device.outbox.close()

    def note(self, event: str) -> None:
        self.log.append(event)
        del self.log[:-30]
        self.seen[event.split(" (")[0].split(" boot")[0].rstrip("0123456789 ms+") or "time"] += 1

    # ---- a random walk ------------------------------------------------------------------------

    def random_step(self) -> None:
        """One step, drawn with the weights of STEP_WEIGHTS."""
        if not self.connected and self.rng.random() < 0.3:  # the link's backoff, roughly
            self.connect()
            return
        if not self.bridge.online and self.rng.random() < 0.1:  # an outage ends
            self.bridge_online(restart=self.rng.random() < 0.5)
            return
        (name,) = self.rng.choices(STEP_NAMES, STEP_WEIGHTS)
        if name == "put":
            self.put(self.rng.choice((1, 1, 2, 5, 40)))
        elif name == "deliver_to_bridge":
            for _ in range(self.rng.randint(1, 10)):
                self.deliver_to_bridge()
        elif name == "advance":
            self.advance(self.rng.choice((10, 100, 2_000, ACK_TIMEOUT_MS + 1, STATE_TIMEOUT_MS)))
        elif name == "bridge_online":
            self.bridge_online(restart=self.rng.random() < 0.5)
        else:
            getattr(self, name)()


STEPS_WEIGHTED = {
    "put": 10,
    "deliver_to_bridge": 25,
    "deliver_to_device": 20,
    "run_device": 25,
    "advance": 10,
    "disconnect": 1.5,
    "kill": 1.5,
    "bridge_offline": 1,
    "bridge_online": 1,
    "replay_stale_state": 1,
    "hostile_state": 1,
}
STEP_NAMES = list(STEPS_WEIGHTED)
STEP_WEIGHTS = list(STEPS_WEIGHTED.values())

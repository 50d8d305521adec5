"""Typed messages of the contract, as deterministic CBOR maps with small integer keys.

Every payload is a map. Keys 0-5 are the common header; keys from 10 up belong to the kind:

    0 ver      major schema version (this module speaks 1)
    1 kind     Kind below
    2 sender   device id, or the bridge instance id for bridge output
    3 seq      sequence number in the sender's space for this kind (see docs/protocol.md)
    4 boot     sender's boot counter
    5 ts_ms    sender's wall clock, ms since the Unix epoch, when the message was made

`decode` is strict about what it knows (types, ranges, sizes) and ignores map keys it does not
know, so that a newer minor revision can add optional keys without breaking older readers; what
such a key holds must still be plain CBOR (no floats, tags, undefined or indefinite lengths). A
higher major version is refused. The full CDDL is in docs/protocol.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from protocol import cbor

# The trigger bodies live in protocol.bodies; re-exported here.
from protocol.bodies import BODIES as BODIES
from protocol.bodies import EMERGENCY_KINDS as EMERGENCY_KINDS
from protocol.bodies import TRIGGER_KINDS as TRIGGER_KINDS
from protocol.bodies import Body as Body
from protocol.bodies import Body_ as Body_
from protocol.bodies import EmergencyBody as EmergencyBody
from protocol.bodies import EvTierBody as EvTierBody
from protocol.bodies import HealthStreakBody as HealthStreakBody
from protocol.bodies import RestockBody as RestockBody
from protocol.bodies import TurnoverBody as TurnoverBody
from protocol.errors import ProtocolError, Reason
from protocol.fields import (
    Args,
    Bool,
    Bytes,
    Choice,
    Id,
    Int,
    IntMap,
    PackedIntMap,
    Scalars,
    Text,
    TextList,
    TextMap,
    UInt,
)
from protocol.kinds import KEY_KIND as KEY_KIND
from protocol.kinds import KEY_VERSION as KEY_VERSION
from protocol.kinds import MAJOR_VERSION as MAJOR_VERSION
from protocol.kinds import MAX_PAYLOAD_BYTES as MAX_PAYLOAD_BYTES
from protocol.kinds import Kind as Kind
from protocol.location import LOCATION_SOURCES as LOCATION_SOURCES
from protocol.location import Location as Location
from protocol.location import Location_ as Location_
from protocol.names import DEVICE_KINDS as DEVICE_KINDS  # re-exported
from protocol.numbering import with_seq as with_seq
from protocol.replay import MAX_SEQ
from protocol.schema import Record
from protocol.schema import field as _f
from protocol.strokes import Strokes

RISK_DECISIONS = frozenset({"allow", "step_up", "hold", "freeze"})
POOL_STATUSES = frozenset({"open", "frozen", "closed"})
COMMANDS = frozenset({"config", "ping", "rotate", "model", "update", "stepup", "diag"})
STEPUP_CONFIRMED = "confirmed"  # the `cmd_result` of a step-up the user confirmed
STEPUP_DECLINED = "declined"  # ... and of one the user (or a device without a prompt) declined
CONFIG_VERSION_ARG = "config_version"
"""The argument of a `config` command that makes it the whole desired configuration of a
version (the bridge's desired state), rather than a change to merge."""
REMOTE_CONFIG_KEYS = frozenset(
    {"report.interval_s", "report.status_interval_s", "outbox.max_messages", "sensors.day_s"}
)
"""The agent keys a `config` command may set, all numbers (the agent checks their ranges with
its own schema; the bridge refuses any other key before sending)."""
KEY_LOCATION = 21  # in Report and Trigger alike
MODEL_SHA256_PREFIX = 8
"""A report's model_sha256 may be cut to this many bytes (older devices send all 32): the
bridge matches it among the few models it holds under the report's model_id."""


# ---- messages -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Message(Record):
    """Common header of every message. Subclasses set KIND and add their fields."""

    KIND: ClassVar[Kind]
    sender: str = _f(2, Id())
    seq: int = _f(3, UInt(MAX_SEQ))
    boot: int = _f(4, UInt(0xFFFF_FFFF))
    ts_ms: int = _f(5, UInt())

    def to_map(self) -> dict[int, Any]:
        out = super().to_map()
        out[KEY_VERSION] = MAJOR_VERSION
        out[KEY_KIND] = int(self.KIND)
        return out


@dataclass(frozen=True, kw_only=True)
class Birth(Message):
    """Sent on every connect. `seq` is 2 * session number (the death of the session is +1).

    `resume_seq` is the lowest data sequence number the device may still send: every lower
    number is acked or will never be sent, so the bridge may settle them in its window.
    """

    KIND: ClassVar[Kind] = Kind.BIRTH
    agent_version: str = _f(10, Text(32))
    model_id: str = _f(11, Text(64))
    model_sha256: bytes = _f(12, Bytes(32, 32))
    config_sha256: bytes = _f(13, Bytes(32, 32))
    device_kind: str = _f(14, Choice(DEVICE_KINDS))
    backlog: int = _f(15, UInt())
    resume_seq: int = _f(16, UInt(MAX_SEQ))
    # The version of the bridge-held desired configuration the device runs (0: none applied,
    # and what a device older than this field means by leaving it out).
    config_version: int = _f(17, UInt(), 0)


@dataclass(frozen=True, kw_only=True)
class Death(Message):
    """End of a session: sent on a clean stop, or by the broker as the last will."""

    KIND: ClassVar[Kind] = Kind.DEATH
    reason: str = _f(10, Choice(frozenset({"shutdown", "lost"})))


@dataclass(frozen=True, kw_only=True)
class Report(Message):
    """Periodic signed score: features -> on-device model -> risk_pm."""

    KIND: ClassVar[Kind] = Kind.REPORT
    model_id: str = _f(10, Text(64))
    model_sha256: bytes = _f(11, Bytes(MODEL_SHA256_PREFIX, 32))  # or a prefix of it
    risk_pm: int = _f(12, UInt(1000))
    features: bytes = _f(13, Bytes(0, 64))
    fingerprint: dict[int, int] = _f(14, PackedIntMap(), {})
    mono_ms: int = _f(15, UInt())
    telemetry: dict[str, int] = _f(16, IntMap(text_keys=True), {})
    cmd_seq: int = _f(17, UInt(MAX_SEQ), 0)
    cmd_result: str = _f(18, Text(64), "")
    location: Location | None = _f(KEY_LOCATION, Location_(), None)
    # How far ts_ms can be trusted: 0 only the device's persisted floor (no real-time clock
    # yet), 1 the bridge's time from its acks, 2 NTP (the default: what a report without the
    # field has always meant).
    time_quality: int = _f(22, UInt(2), 2)
    # The confirming swipes' Touchalytics features, fixed point (protocol.strokes); absent: none.
    strokes: tuple[tuple[int, ...], ...] = _f(23, Strokes(), ())


@dataclass(frozen=True, kw_only=True)
class Trigger(Message):
    """A scene trigger fired by a rule; the body's class says which scene."""

    KIND: ClassVar[Kind] = Kind.TRIGGER
    model_id: str = _f(10, Text(64))
    model_sha256: bytes = _f(11, Bytes(32, 32))
    risk_pm: int = _f(12, UInt(1000))
    mono_ms: int = _f(15, UInt())
    rule: str = _f(18, Id())
    priority: int = _f(19, UInt(255))
    body: Body = _f(20, Body_())
    location: Location | None = _f(KEY_LOCATION, Location_(), None)

    @property
    def trigger(self) -> str:
        """The trigger kind: restock, health_streak, ev_tier, emergency or turnover."""
        return self.body.NAME

    def to_map(self) -> dict[int, Any]:
        out = super().to_map()
        out[17] = self.body.NAME
        return out


@dataclass(frozen=True, kw_only=True)
class Ack(Message):
    """Bridge -> device: every data message up to `ack_seq` is durably stored."""

    KIND: ClassVar[Kind] = Kind.ACK
    device: str = _f(10, Id())
    ack_seq: int = _f(11, UInt(MAX_SEQ))


@dataclass(frozen=True, kw_only=True)
class BridgeState(Message):
    """Retained on cp/v1/{fleet}/bridge/state; the last will says offline."""

    KIND: ClassVar[Kind] = Kind.BRIDGE_STATE
    online: bool = _f(10, Bool())


@dataclass(frozen=True, kw_only=True)
class Decision(Message):
    """Bridge -> cloud team: what one device event led to."""

    KIND: ClassVar[Kind] = Kind.DECISION
    user: str = _f(10, Id())
    device: str = _f(11, Id())
    device_seq: int = _f(12, UInt(MAX_SEQ))
    decision: str = _f(13, Choice(RISK_DECISIONS))
    action: str = _f(14, Text(32))
    result: str = _f(15, Text(32))
    amount_fen: int = _f(16, Int(), 0)
    risk_pm: int = _f(17, UInt(1000), 0)
    reasons: tuple[str, ...] = _f(18, TextList(), ())
    received_ms: int = _f(19, UInt(), 0)


@dataclass(frozen=True, kw_only=True)
class PoolState(Message):
    """Retained pool balances on cp/v1/{fleet}/pool/{user}/state.

    `version` increases with every change of the pool and `updated_ms` is when that change
    was made (0 from a bridge older than this field); `ts_ms` is when this copy was signed (a
    republished state keeps its version and updated_ms). A reader keeps the highest version
    and ignores older ones (docs/protocol.md section 5, "Pool state").
    """

    KIND: ClassVar[Kind] = Kind.POOL_STATE
    user: str = _f(10, Id())
    status: str = _f(11, Choice(POOL_STATUSES))
    limit_fen: int = _f(12, Int())
    available_fen: int = _f(13, Int())
    outstanding_fen: int = _f(14, Int())
    held_fen: int = _f(15, Int())
    rate_bps: int = _f(16, UInt(100_000))
    version: int = _f(17, UInt())
    updated_ms: int = _f(18, UInt(), 0)


@dataclass(frozen=True, kw_only=True)
class PoolEvent(Message):
    """One event of one pool change, on cp/v1/{fleet}/pool/{user}/event (not retained).

    Every change of a pool, whatever made it (a device, an operator command, the scheduler, a
    repayment), has a `version` one above the pool's previous one and one or more events; each
    event is one message, `index` 0..`count`-1 within its change. So per user the messages form
    the gapless sequence (version, index), which is also the idempotency key of the message: a
    reader that sees one twice (at-least-once delivery) drops the second. `key` is the
    idempotency key of the command that made the change and `command` its kind ("tick": time
    alone, from the scheduler); `result` is "ok" or the command's refusal code (time may change
    a pool even when the command is refused: a hold expires, a statement closes).
    """

    KIND: ClassVar[Kind] = Kind.POOL_EVENT
    user: str = _f(10, Id())
    version: int = _f(11, UInt())
    index: int = _f(12, UInt())
    count: int = _f(13, UInt())
    event: str = _f(14, Text(32))
    at_ms: int = _f(15, UInt())
    data: dict[str, int | str] = _f(16, Scalars(), {})
    command: str = _f(17, Text(32))
    key: str = _f(18, Text(128))
    result: str = _f(19, Text(32))


@dataclass(frozen=True, kw_only=True)
class Payout(Message):
    """A payout instruction on cp/v1/{fleet}/pool/{user}/payout (not retained): an emergency
    draw the pool granted, for the payments side to pay out to the user.

    `key` is the draw's idempotency key (one payout per draw: a payments system that sees a key
    again drops it); `version` is the pool version the draw made. `received_ms` is when the
    bridge received the emergency trigger and `budget_ms` the tier's response-time target from
    the policy (illness 15 s, disaster 30 s, education 45 s by default).
    """

    KIND: ClassVar[Kind] = Kind.PAYOUT
    user: str = _f(10, Id())
    amount_fen: int = _f(11, UInt())
    tier: str = _f(12, Choice(EMERGENCY_KINDS))
    key: str = _f(13, Text(128))
    version: int = _f(14, UInt())
    device: str = _f(15, Id())
    device_seq: int = _f(16, UInt(MAX_SEQ))
    received_ms: int = _f(17, UInt())
    budget_ms: int = _f(18, UInt())


@dataclass(frozen=True, kw_only=True)
class Application(Message):
    """A credit application from a user's enrolled phone, on cp/v1/{fleet}/{device}/application.

    A data message: it shares the sender's data sequence numbers (and replay window and acks)
    with reports and triggers. The applicant is the user of the device; `applicant` holds the
    scorecard's attributes (docs/scorecard.md), each an integer or a category, as in the file
    `cloud-bridge pool apply --applicant` reads (the wire has no floats). Which names and
    values are valid is the scorecard artifact's to say: the bridge scores it and refuses an
    unknown attribute or category with `bad_field`.
    """

    KIND: ClassVar[Kind] = Kind.APPLICATION
    applicant: dict[str, int | str] = _f(10, Scalars())

    @property
    def risk_pm(self) -> int:
        """An application claims no score of its own (decisions carry 0)."""
        return 0


@dataclass(frozen=True, kw_only=True)
class Command(Message):
    """Bridge -> device on cp/v1/{fleet}/{device}/cmd/{command}.

    A device applies a command at most once (its replay window per bridge sender), never from a
    retained message, and not after `expires_ms` by a trusted wall clock; a `config` command
    with a `config_version` argument carries the whole desired configuration of that version.
    """

    KIND: ClassVar[Kind] = Kind.COMMAND
    device: str = _f(10, Id())
    command: str = _f(11, Choice(COMMANDS))
    args: dict[str, int | str | bytes | bool] = _f(12, Args(), {})
    # Bridge wall time (ms since the epoch) after which the device must not apply it; 0: never.
    expires_ms: int = _f(13, UInt(), 0)


@dataclass(frozen=True, kw_only=True)
class Risk(Message):
    """Bridge -> cloud team on cp/v1/{fleet}/risk/{device}: an alert or a rejection."""

    KIND: ClassVar[Kind] = Kind.RISK
    device: str = _f(10, Id())
    category: str = _f(11, Choice(frozenset({"rejection", "alert"})))
    reason: str = _f(12, Text(32))
    detail: str = _f(13, Text(256), "")
    device_seq: int = _f(14, UInt(MAX_SEQ), 0)
    risk_pm: int = _f(15, UInt(1000), 0)


@dataclass(frozen=True, kw_only=True)
class Enrollment(Message):
    """A device key and its enrolled baseline.

    Provisioning signs it with the new key itself; a rotation signs it with the old key and sets
    `prev_kid`. `seq` is the key generation (1 for the first key).
    """

    KIND: ClassVar[Kind] = Kind.ENROLLMENT
    fleet: str = _f(10, Id())
    device_kind: str = _f(11, Choice(DEVICE_KINDS))
    public_key: bytes = _f(12, Bytes(32, 32))
    baseline: dict[int, int] = _f(13, IntMap(), {})
    identity: dict[str, str] = _f(14, TextMap(), {})
    prev_kid: bytes = _f(15, Bytes(0, 64), b"")
    # The Mosquitto `$7$` hash of the device's MQTT password (protocol.mqtt_password), never the
    # password; empty in records made before broker accounts (they stay valid).
    mqtt_hash: str = _f(16, Text(160), "")
    # Enrollment by claim: the bridge-signed claim token (protocol.claims) that admits this
    # record once; empty in a record enrolled by an operator. (Key 17 stays free: a byte string
    # under 17 crashed the CDDL checker of tools/contract against Report's cmd_seq range.)
    claim: bytes = _f(18, Bytes(0, 512), b"")


CLAIM_RESULTS = frozenset({"enrolled", "refused"})


@dataclass(frozen=True, kw_only=True)
class ClaimAnswer(Message):
    """Bridge -> a claiming device on cp/v1/{fleet}/{claim account}/claim_answer.

    `enrolled`: `sealed` holds the device's broker credentials (protocol.claims.Credentials),
    encrypted to the X25519 form of the key it enrolled; the same answer is sent again to a
    retry of the same key and claim. `refused`: `reason` is a stable code (claim_used,
    claim_expired, claim_revoked, claim_unknown, claim_invalid, claim_account, device_taken).
    """

    KIND: ClassVar[Kind] = Kind.CLAIM_ANSWER
    device: str = _f(10, Id())
    result: str = _f(11, Choice(CLAIM_RESULTS))
    reason: str = _f(12, Text(32), "")
    sealed: bytes = _f(13, Bytes(0, 512), b"")


MAX_DIAG_BYTES = 3072
"""A diagnostics answer is cut to this many payload bytes, log lines first (oldest first)."""


@dataclass(frozen=True, kw_only=True)
class Diag(Message):
    """Device -> operator on cp/v1/{fleet}/{device}/diag: the answer to a `diag` command.

    `seq` is the seq of the command it answers. `crash` is the last abnormal end of the agent
    kept across restarts (an unhandled exception, or an unclean end such as SIGKILL or a power
    cut found at the next start; on the ESP32 the reset cause and main.py's crash file), with
    `crash_ms` when it was recorded; `figures` are counters (memory, outbox, link); `log` the
    newest log lines, oldest first, as many as fit in MAX_DIAG_BYTES.
    """

    KIND: ClassVar[Kind] = Kind.DIAG
    uptime_s: int = _f(10, UInt())
    crash: str = _f(11, Text(200), "")
    crash_ms: int = _f(12, UInt(), 0)
    figures: dict[str, int] = _f(13, IntMap(text_keys=True), {})
    log: tuple[str, ...] = _f(14, TextList(200, 200), ())


KINDS: dict[int, type[Message]] = {
    cls.KIND: cls
    for cls in (
        Birth,
        Death,
        Report,
        Trigger,
        Ack,
        BridgeState,
        Decision,
        PoolState,
        Command,
        Risk,
        Enrollment,
        PoolEvent,
        Payout,
        ClaimAnswer,
        Diag,
        Application,
    )
}

M = TypeVar("M", bound=Message)


def encode(message: Message) -> bytes:
    """Deterministic CBOR of a message; ProtocolError(OVERSIZE) past 4 KiB."""
    data = cbor.dumps(message.to_map())
    if len(data) > MAX_PAYLOAD_BYTES:
        raise ProtocolError(Reason.OVERSIZE, f"{len(data)} bytes, limit {MAX_PAYLOAD_BYTES}")
    return data


def decode(payload: bytes) -> Message:
    """Parse and validate a payload. Every failure is a ProtocolError with a reason."""
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise ProtocolError(Reason.BAD_CBOR, "payload is not bytes")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ProtocolError(Reason.OVERSIZE, f"{len(payload)} bytes, limit {MAX_PAYLOAD_BYTES}")
    # Every field the schema knows is checked by its type below, so the generic walk is skipped.
    data = cbor.loads(bytes(payload), plain=False)
    if type(data) is not dict:
        raise ProtocolError(Reason.NOT_A_MAP, f"payload is a {type(data).__name__}, not a map")
    if any(type(key) is not int for key in data):
        # Only integer keys: 0.0 or True would otherwise stand in for key 0 or 1.
        raise ProtocolError(Reason.BAD_CBOR, "message map keys must be integers")
    version = data.get(KEY_VERSION)
    if version is None:
        raise ProtocolError(Reason.MISSING_FIELD, "ver (key 0) is missing")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ProtocolError(Reason.BAD_FIELD, "ver (key 0) must be an unsigned integer")
    if version != MAJOR_VERSION:
        raise ProtocolError(
            Reason.UNSUPPORTED_VERSION, f"major version {version}, this reader speaks 1"
        )
    kind = data.get(KEY_KIND)
    if kind is None:
        raise ProtocolError(Reason.MISSING_FIELD, "kind (key 1) is missing")
    if type(kind) is not int or kind not in KINDS:
        raise ProtocolError(Reason.UNKNOWN_KIND, f"kind {kind!r}")
    cls = KINDS[kind]
    try:
        return cls(**cls._kwargs(data))
    except ProtocolError:
        raise
    except (TypeError, ValueError) as exc:  # a check that met a type it did not expect
        raise ProtocolError(Reason.BAD_FIELD, f"{cls.__name__}: {exc}") from exc


def decode_as(payload: bytes, cls: type[M]) -> M:
    """decode, and require the kind `cls` (else ProtocolError(TOPIC_MISMATCH))."""
    message = decode(payload)
    if not isinstance(message, cls):
        raise ProtocolError(
            Reason.TOPIC_MISMATCH, f"expected {cls.__name__}, got {type(message).__name__}"
        )
    return message

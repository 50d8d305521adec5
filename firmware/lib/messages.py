"""The messages of the contract as the device builds and reads them: the keys, types and
defaults of protocol/messages.py, mirrored field for field (tests/firmware checks the mirror).

Every payload is a deterministic CBOR map: keys 0 ver, 1 kind, 2 sender, 3 seq, 4 boot,
5 ts_ms, then the kind's own keys from 10 up. An optional field that holds its default is left
out, as the bridge's encoder does, so both produce the same bytes.

    encode(kind, fields)       a dict of field names -> payload bytes (ProtocolError if bad)
    decode(payload)            -> Message (kind, fields) for the kinds the device receives
    with_seq(payload, seq)     an encoded message whose seq is 0, numbered without decoding
    seal(kind, fields, key)    encode and COSE_Sign1-sign
    open_(envelope, resolve)   verify1 and decode

Field types: "u" unsigned, "i" signed 64-bit, "t" text, "b" bytes, "?" bool, "m" map,
"fp" a map written packed when its keys are 0..n-1 (protocol/packed.py), "l" list of text,
"body" the trigger's body (its class is named by key 17), "loc" a location (LOCATION), always
optional: absent or None leaves it out (its None default is not REQUIRED), "s" touch strokes (a
list of lists of integers; a board without a screen never sends them).
"""

import cbor
import cose
from errors import ProtocolError

MAJOR_VERSION = 1
MAX_PAYLOAD_BYTES = 4096
MAX_DIAG_BYTES = 3072  # protocol/messages.py: a diag answer is cut to this, log lines first
MAX_SEQ = (1 << 63) - 1
INT64_MIN = -(1 << 63)  # protocol/packed.py: a fingerprint's values are signed 64-bit
INT64_MAX = (1 << 63) - 1
MODEL_SHA256_PREFIX = 8  # a report's model_sha256 may be the model's SHA-256 cut to this

BIRTH = 1
DEATH = 2
REPORT = 3
TRIGGER = 4
ACK = 5
BRIDGE_STATE = 6
DECISION = 7
POOL_STATE = 8
COMMAND = 9
RISK = 10
ENROLLMENT = 11
POOL_EVENT = 12  # bridge -> cloud team only: the device never builds or reads these two
PAYOUT = 13
CLAIM_ANSWER = 14
DIAG = 15
APPLICATION = 16  # a phone's message: the board never sends one

REQUIRED = None  # a field without a default
_EMPTY = {}  # type: dict  # the default of map fields; never mutated

_HEADER_KEYS = (0, 1, 2, 3, 4, 5)  # ver, kind, then HEADER
HEADER = (
    (2, "sender", "t", REQUIRED),
    (3, "seq", "u", REQUIRED),
    (4, "boot", "u", REQUIRED),
    (5, "ts_ms", "u", REQUIRED),
)

# kind -> (class name in protocol/messages.py, its own fields after the header)
FIELDS = {
    BIRTH: ("Birth", (
        (10, "agent_version", "t", REQUIRED),
        (11, "model_id", "t", REQUIRED),
        (12, "model_sha256", "b", REQUIRED),
        (13, "config_sha256", "b", REQUIRED),
        (14, "device_kind", "t", REQUIRED),
        (15, "backlog", "u", REQUIRED),
        (16, "resume_seq", "u", REQUIRED),
        (17, "config_version", "u", 0),
    )),
    DEATH: ("Death", (
        (10, "reason", "t", REQUIRED),
    )),
    REPORT: ("Report", (
        (10, "model_id", "t", REQUIRED),
        (11, "model_sha256", "b", REQUIRED),
        (12, "risk_pm", "u", REQUIRED),
        (13, "features", "b", REQUIRED),
        (14, "fingerprint", "fp", _EMPTY),
        (15, "mono_ms", "u", REQUIRED),
        (16, "telemetry", "m", _EMPTY),
        (17, "cmd_seq", "u", 0),
        (18, "cmd_result", "t", ""),
        (21, "location", "loc", None),
        (22, "time_quality", "u", 2),
        (23, "strokes", "s", ()),
    )),
    TRIGGER: ("Trigger", (
        (10, "model_id", "t", REQUIRED),
        (11, "model_sha256", "b", REQUIRED),
        (12, "risk_pm", "u", REQUIRED),
        (15, "mono_ms", "u", REQUIRED),
        (18, "rule", "t", REQUIRED),
        (19, "priority", "u", REQUIRED),
        (20, "body", "body", REQUIRED),
        (21, "location", "loc", None),
    )),
    ACK: ("Ack", (
        (10, "device", "t", REQUIRED),
        (11, "ack_seq", "u", REQUIRED),
    )),
    BRIDGE_STATE: ("BridgeState", (
        (10, "online", "?", REQUIRED),
    )),
    COMMAND: ("Command", (
        (10, "device", "t", REQUIRED),
        (11, "command", "t", REQUIRED),
        (12, "args", "m", _EMPTY),
        (13, "expires_ms", "u", 0),
    )),
    ENROLLMENT: ("Enrollment", (
        (10, "fleet", "t", REQUIRED),
        (11, "device_kind", "t", REQUIRED),
        (12, "public_key", "b", REQUIRED),
        (13, "baseline", "m", _EMPTY),
        (14, "identity", "m", _EMPTY),
        (15, "prev_kid", "b", b""),
        (16, "mqtt_hash", "t", ""),
        (18, "claim", "b", b""),
    )),
    CLAIM_ANSWER: ("ClaimAnswer", (
        (10, "device", "t", REQUIRED),
        (11, "result", "t", REQUIRED),
        (12, "reason", "t", ""),
        (13, "sealed", "b", b""),
    )),
    DIAG: ("Diag", (
        (10, "uptime_s", "u", REQUIRED),
        (11, "crash", "t", ""),
        (12, "crash_ms", "u", 0),
        (13, "figures", "m", _EMPTY),
        (14, "log", "l", ()),
    )),
}  # fmt: skip

# the fields of a location (key 21 of reports and triggers)
LOCATION = (
    (1, "lat_e7", "i", REQUIRED),
    (2, "lon_e7", "i", REQUIRED),
    (3, "accuracy_m", "u", REQUIRED),
    (4, "source", "t", REQUIRED),
)

# trigger kind (key 17) -> the body's fields
BODIES = {
    "restock": (
        (1, "item", "t", REQUIRED),
        (2, "level_pct", "u", REQUIRED),
        (3, "threshold_pct", "u", REQUIRED),
        (4, "est_cost_fen", "u", REQUIRED),
    ),
    "health_streak": (
        (1, "streak_days", "u", REQUIRED),
        (2, "goal_steps", "u", REQUIRED),
    ),
    "ev_tier": (
        (1, "km_30d", "u", REQUIRED),
        (2, "tier", "u", REQUIRED),
    ),
    "emergency": (
        (1, "emergency", "t", REQUIRED),
        (2, "source", "t", REQUIRED),
        (3, "amount_fen", "u", 0),
    ),
    "turnover": (
        (1, "day", "u", REQUIRED),
        (2, "turnover_fen", "u", REQUIRED),
    ),
}
KEY_TRIGGER = 17

RECEIVED = (ACK, BRIDGE_STATE, COMMAND, CLAIM_ANSWER)
"""The kinds `decode` accepts: what the bridge sends a device."""


class Message:
    """A decoded message: `kind` and `fields` (field name -> value, defaults filled in)."""

    def __init__(self, kind, fields):
        self.kind = kind
        self.fields = fields

    def __getitem__(self, name):
        return self.fields[name]


def _check(name, typ, value):
    if typ == "u" or typ == "i":
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and typ == "u":
            ok = 0 <= value < 1 << 64
        if ok and typ == "i":
            ok = INT64_MIN <= value <= INT64_MAX
    elif typ == "t":
        ok = isinstance(value, str)
    elif typ == "b":
        ok = isinstance(value, (bytes, bytearray))
    elif typ == "?":
        ok = isinstance(value, bool)
    elif typ == "fp":
        ok = _int_map(value)
    elif typ == "m":
        ok = isinstance(value, dict)
    elif typ == "l" or typ == "s":
        ok = isinstance(value, (list, tuple))
    elif typ == "loc":
        ok = value is None or isinstance(value, dict)
    else:
        ok = isinstance(value, dict)
    if not ok:
        raise ProtocolError("bad_field", "%s has the wrong type" % name)


def _to_map(table, fields, out):
    # fields by name -> out by key; optional fields at their default are left out
    used = 0
    for key, name, typ, default in table:
        if name not in fields:
            if default is REQUIRED and typ != "loc":
                raise ProtocolError("missing_field", name)
            continue
        used += 1
        value = fields[name]
        _check(name, typ, value)
        if (default is not REQUIRED and value == default) or (typ == "loc" and value is None):
            continue
        if typ == "body":
            value = _to_map(BODIES[fields["trigger"]], value, {})
        elif typ == "loc":
            value = _to_map(LOCATION, value, {})
        elif typ == "fp":
            value = pack(value) if packable(value) else value
        out[key] = value
    return out


def _int_map(value):
    # protocol/fields.py IntMap(key_max=PACKED_MAX - 1, max_items=PACKED_MAX): integer keys
    # 0..23 and int64 values, neither a bool (True is an int to isinstance, not to the bridge)
    if not isinstance(value, dict) or len(value) > PACKED_MAX:
        return False
    for k, v in value.items():
        if type(k) is not int or not 0 <= k < PACKED_MAX:
            return False
        if type(v) is not int or not INT64_MIN <= v <= INT64_MAX:
            return False
    return True


def packable(values):
    """Whether a map has exactly the keys 0..n-1, 1 <= n <= PACKED_MAX (protocol/packed.py);
    a bool key is not an int here, as there."""
    n = len(values)
    if not 1 <= n <= PACKED_MAX:
        return False
    for k in values:
        if type(k) is not int or not 0 <= k < n:
            return False
    return True


PACKED_MAX = 24  # the keys of a fingerprint


def pack(values):
    """A map with the keys 0..n-1 as protocol/packed.py packs it: n, then the values of keys
    0..m-1 as zigzag LEB128 varints, the zero values after the last nonzero one left out.
    ProtocolError for a value outside int64 (protocol/packed.py's ValueError)."""
    n = len(values)
    m = n
    while m and values[m - 1] == 0:
        m -= 1
    out = bytearray((n,))
    for i in range(m):
        v = values[i]
        if type(v) is not int or not INT64_MIN <= v <= INT64_MAX:
            raise ProtocolError("bad_field", "values must be signed 64-bit integers")
        z = 2 * v if v >= 0 else -2 * v - 1
        while z >= 0x80:
            out.append(0x80 | (z & 0x7F))
            z >>= 7
        out.append(z)
    return bytes(out)


def encode(kind, fields):
    """The payload of a message of `kind` with `fields` (names as in protocol/messages.py; a
    trigger also names its body's kind in fields["trigger"])."""
    spec = FIELDS.get(kind)
    if spec is None:
        raise ProtocolError("unknown_kind", "kind %r" % (kind,))
    out = {0: MAJOR_VERSION, 1: kind}
    _to_map(HEADER, fields, out)
    _to_map(spec[1], fields, out)
    if kind == TRIGGER:
        if fields.get("trigger") not in BODIES:
            raise ProtocolError("bad_field", "trigger must be one of the BODIES")
        out[KEY_TRIGGER] = fields["trigger"]
    data = cbor.encode(out)
    if len(data) > MAX_PAYLOAD_BYTES:
        raise ProtocolError("oversize", "%d bytes" % len(data))
    return data


def _from_map(table, data):
    fields = {}
    for key, name, typ, default in table:
        if key not in data:
            if default is REQUIRED and typ != "loc":
                raise ProtocolError("missing_field", "%s (key %d) is missing" % (name, key))
            fields[name] = default
            continue
        value = data[key]
        _check(name, typ, value)
        fields[name] = value
    return fields


def decode(payload):
    """Parse a payload of a kind the device receives (RECEIVED) into a Message; every
    failure is a ProtocolError. Unknown keys are ignored (a newer minor revision), but what
    they hold must still be plain CBOR, as on the bridge."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ProtocolError("oversize", "%d bytes" % len(payload))
    data = cbor.decode(payload)
    if not isinstance(data, dict):
        raise ProtocolError("not_a_map", "payload is not a map")
    version = data.get(0)
    if version is None:
        raise ProtocolError("missing_field", "ver (key 0) is missing")
    if version != MAJOR_VERSION or isinstance(version, bool):
        raise ProtocolError("unsupported_version", "major version %r" % (version,))
    kind = data.get(1)
    if kind not in RECEIVED or isinstance(kind, bool):
        raise ProtocolError("unknown_kind", "kind %r" % (kind,))
    fields = _from_map(HEADER, data)
    table = FIELDS[kind][1]
    fields.update(_from_map(table, data))
    for key in data:
        if key not in _HEADER_KEYS and not _knows(table, key):
            _refuse_tags(data[key])
    return Message(kind, fields)


def _knows(table, key):
    for row in table:
        if row[0] == key:
            return True
    return False


def _refuse_tags(value):
    # docs/protocol.md section 3: tags never appear in a payload, under unknown keys neither
    # (cbor.decode already refuses floats, undefined and indefinite lengths anywhere)
    if isinstance(value, cbor.Tag):
        raise ProtocolError("bad_cbor", "tags are not part of the contract")
    if isinstance(value, list):
        for item in value:
            _refuse_tags(item)
    elif isinstance(value, dict):
        for item in value.values():
            _refuse_tags(item)


def kind_of(payload):
    """The kind of an encoded message, read in place: key 1 follows ver (key 0) at the start
    of the deterministic map."""
    pos = 1 if 0xA0 <= payload[0] <= 0xB7 else 2
    if payload[pos : pos + 3] != b"\x00\x01\x01":
        raise ProtocolError("bad_cbor", "not an encoded message of this version")
    return payload[pos + 3]


def with_seq(payload, seq):
    """`payload` (an encoded message whose seq is 0) with seq set, without decoding it: the
    deterministic order puts keys 0-3 first, so seq's single zero byte follows the sender."""
    if not 1 <= seq <= MAX_SEQ:
        raise ProtocolError("bad_field", "seq %d out of range" % seq)
    pos = 1 if 0xA0 <= payload[0] <= 0xB7 else 2
    if payload[pos : pos + 3] != b"\x00\x01\x01":
        raise ProtocolError("bad_cbor", "not an encoded message of this version")
    pos += 4
    if payload[pos] != 0x02:
        raise ProtocolError("bad_cbor", "key 2 (sender) is not where it belongs")
    text = payload[pos + 1]
    if text < 0x78:
        pos = pos + 2 + text - 0x60
    else:
        pos = pos + 3 + payload[pos + 2]
    if payload[pos : pos + 2] != b"\x03\x00":
        raise ProtocolError("bad_cbor", "the message's seq is not 0")
    return payload[: pos + 1] + cbor.head(0, seq) + payload[pos + 2 :]


def seal(kind, fields, key, protected=None):
    """encode, then COSE_Sign1 with `key` (ed25519.SigningKey)."""
    return cose.sign1(encode(kind, fields), key, protected=protected)


def open_(envelope, resolve):
    """verify1 with `resolve(kid) -> public key or None`, then decode."""
    payload, _kid = cose.verify1(envelope, resolve)
    return decode(payload)

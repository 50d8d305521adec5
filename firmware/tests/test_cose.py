"""COSE_Sign1 and the messages against this project's vectors (tests/vectors/project.json,
made by tools/gen_vectors.py with the bridge's own code), byte for byte."""

import cbor
import cose
import ed25519
import messages
import vectors
from errors import ProtocolError

HEAPSIZE = "256k"  # the parsed vector file (30 KB of JSON) takes most of it

_DOC = None


def _doc():
    global _DOC
    if _DOC is None:
        _DOC = vectors.load("project.json")
    return _DOC


def _key():
    return ed25519.SigningKey(bytes.fromhex(_doc()["key"]["seed"]))


def _vector(name):
    for case in _doc()["messages"]:
        if case["name"] == name:
            return case
    raise KeyError(name)


def test_key_and_kid():
    key = _key()
    assert key.public.hex() == _doc()["key"]["public"]
    assert cose.kid_for(key.public).hex() == _doc()["key"]["kid"]


def test_cose_vectors_sign_and_verify_byte_for_byte():
    key = _key()
    public = key.public
    for case in _doc()["cose"]:
        payload = bytes.fromhex(case["payload"])
        envelope = cose.sign1(payload, key)
        assert envelope.hex() == case["envelope"]
        got, kid = cose.verify1(envelope, lambda kid: public)
        assert got == payload and kid == cose.kid_for(public)


def _refusal(envelope, resolve):
    try:
        cose.verify1(envelope, resolve)
    except ProtocolError as exc:
        return exc.reason
    raise AssertionError("accepted")


def test_cose_refusals_carry_the_bridges_reasons():
    public = _key().public
    envelope = bytes.fromhex(_doc()["cose"][1]["envelope"])
    tampered = bytearray(envelope)
    tampered[-70] ^= 1  # inside the payload
    assert _refusal(bytes(tampered), lambda kid: public) == "bad_signature"
    assert _refusal(envelope, lambda kid: None) == "unknown_device"
    assert _refusal(envelope[1:], lambda kid: public) == "not_cose"
    assert _refusal(envelope[:-1], lambda kid: public) == "not_cose"
    item = cbor.decode(envelope).value
    item[0] = cbor.encode({1: -7, 4: cose.kid_for(public)})  # ES256
    assert _refusal(cbor.encode(cbor.Tag(18, item)), lambda kid: public) == "unsupported_alg"
    item[0] = cbor.encode({1: -8, 2: [1], 4: cose.kid_for(public)})
    assert _refusal(cbor.encode(cbor.Tag(18, item)), lambda kid: public) == "bad_header"


HEAD = {"sender": "rig-07", "boot": 3, "ts_ms": 1764288000000}
SHA_A = bytes.fromhex("5d41402abc4b2a76b9719d911017c592" * 2)
SCORED = {"model_id": "risk-v1", "model_sha256": SHA_A, "risk_pm": 37, "mono_ms": 5025113}


LIMITS = (
    (1 << 30) - 1, 1 << 30, -(1 << 30), -(1 << 30) - 1,  # the ESP32's small-int edge (31 bits)
    (1 << 31) - 1, -(1 << 31),
    (1 << 62) - 1, 1 << 62, -(1 << 62), -(1 << 62) - 1,  # the 64-bit unix port's edge
    (1 << 63) - 1, -(1 << 63),  # int64's: the longest varint
    0, 1, -1,
)  # fmt: skip


def _with(*parts):
    out = {}
    for part in parts:
        out.update(part)
    return out


# the examples of tools/gen_vectors.py, written out by field name as the firmware builds them
SENT = (
    ("birth", messages.BIRTH, _with(HEAD, {
        "seq": 8, "agent_version": "0.1.0", "model_id": "risk-v1", "model_sha256": SHA_A,
        "config_sha256": bytes(range(32)), "device_kind": "phone", "backlog": 12,
        "resume_seq": 41})),
    ("death", messages.DEATH, _with(HEAD, {"seq": 9, "reason": "lost"})),
    ("report", messages.REPORT, _with(HEAD, SCORED, {
        "seq": 42, "features": bytes([0, 255, 17, 128, 127]),
        "fingerprint": {0: -1520, 1: 300, 2: 998700}, "telemetry": {"steps": 8123}})),
    ("report-esp32", messages.REPORT, _with(HEAD, SCORED, {
        "seq": 12345, "model_sha256": SHA_A[:messages.MODEL_SHA256_PREFIX], "risk_pm": 412,
        "features": bytes([255, 2, 250, 247, 5, 251, 6, 248, 3, 3, 255, 255, 9, 250]),
        "fingerprint": dict(enumerate((992313, -79795, -229127, -355200, 509, 25539, -84,
                                       -1290, -114, -1294, 1000, 0, 7441, 796, 25471)
                                      + (0,) * 9)),
        "mono_ms": 344701, "telemetry": {"imu.ok": 1}, "time_quality": 0})),
    ("report-located", messages.REPORT, _with(HEAD, SCORED, {
        "seq": 48, "features": b"", "location": {
            "lat_e7": 312304160, "lon_e7": 1214737010, "accuracy_m": 8, "source": "gps"}})),
    ("report-fingerprint-limits", messages.REPORT, _with(HEAD, SCORED, {
        "seq": 51, "features": b"", "fingerprint": dict(enumerate(LIMITS))})),
    ("report-fingerprint-limits-map", messages.REPORT, _with(HEAD, SCORED, {
        "seq": 52, "features": b"", "fingerprint": {
            0: (1 << 30) - 1, 2: -(1 << 30) - 1, 22: (1 << 63) - 1, 23: -(1 << 63)}})),
    ("report-cmd-reply", messages.REPORT, _with(HEAD, SCORED, {
        "seq": 43, "features": b"", "cmd_seq": 5, "cmd_result": "ok",
        "fingerprint": {}, "telemetry": {}})),
    ("trigger-restock", messages.TRIGGER, _with(HEAD, SCORED, {
        "seq": 44, "rule": "milk-low", "priority": 5, "trigger": "restock",
        "body": {"item": "milk", "level_pct": 12, "threshold_pct": 25,
                 "est_cost_fen": 2590}})),
    ("trigger-health", messages.TRIGGER, _with(HEAD, SCORED, {
        "seq": 45, "rule": "steps-7d", "priority": 3, "trigger": "health_streak",
        "body": {"streak_days": 7, "goal_steps": 10000}})),
    ("trigger-ev", messages.TRIGGER, _with(HEAD, SCORED, {
        "seq": 46, "rule": "ev-tier", "priority": 2, "trigger": "ev_tier",
        "body": {"km_30d": 1840, "tier": 2}})),
    ("trigger-emergency", messages.TRIGGER, _with(HEAD, SCORED, {
        "seq": 47, "rule": "fall", "priority": 255, "trigger": "emergency",
        "body": {"emergency": "illness", "source": "fall", "amount_fen": 500000}})),
    ("enrollment", messages.ENROLLMENT, _with(HEAD, {
        "seq": 1, "fleet": "demo", "device_kind": "phone",
        "public_key": bytes.fromhex(
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"),
        "baseline": {0: -1500, 1: 310}, "identity": {"serial": "00000000a1b2"}})),
)  # fmt: skip


def test_sent_messages_encode_and_seal_byte_for_byte():
    key = _key()
    for name, kind, fields in SENT:
        case = _vector(name)
        assert messages.encode(kind, fields).hex() == case["payload"], name
        assert messages.seal(kind, fields, key).hex() == case["envelope"], name


def test_with_seq_numbers_an_unnumbered_payload_as_encoding_would():
    for name, kind, fields in SENT:
        unnumbered = dict(fields)
        unnumbered["seq"] = 0
        payload = messages.encode(kind, unnumbered)
        assert messages.with_seq(payload, fields["seq"]).hex() == _vector(name)["payload"], name
        for seq in (1, 23, 24, 255, 256, 65536, 1 << 32, messages.MAX_SEQ):
            numbered = dict(fields)
            numbered["seq"] = seq
            assert messages.with_seq(payload, seq) == messages.encode(kind, numbered)


RECEIVED = (
    ("ack", messages.ACK, {"sender": "bridge-1", "seq": 100, "boot": 1,
                           "ts_ms": 1764288000500, "device": "rig-07", "ack_seq": 47}),
    ("bridge-state", messages.BRIDGE_STATE, {"sender": "bridge-1", "seq": 101, "boot": 1,
                                             "ts_ms": 1764288000500, "online": True}),
    ("command", messages.COMMAND, {"sender": "bridge-1", "seq": 104, "boot": 1,
                                   "ts_ms": 1764288000500, "device": "rig-07",
                                   "command": "config", "args": {"report.interval_s": 30},
                                   "expires_ms": 0}),
    ("command-desired-config", messages.COMMAND, {
        "sender": "bridge-1", "seq": 106, "boot": 1, "ts_ms": 1764288000500, "device": "rig-07",
        "command": "config", "args": {"config_version": 4, "report.interval_s": 30},
        "expires_ms": 1764291600500}),
)  # fmt: skip


def test_received_messages_verify_and_decode():
    public = _key().public
    for name, kind, expected in RECEIVED:
        message = messages.open_(bytes.fromhex(_vector(name)["envelope"]), lambda kid: public)
        assert message.kind == kind, name
        assert message.fields == expected, (name, message.fields)


def test_kinds_the_device_does_not_receive_are_refused():
    for name in ("decision", "pool-state", "risk", "report"):
        try:
            messages.decode(bytes.fromhex(_vector(name)["payload"]))
        except ProtocolError as exc:
            assert exc.reason == "unknown_kind", name
            continue
        raise AssertionError(name)


def test_payloads_outside_the_contract_are_refused_as_on_the_bridge():
    # NaN, undefined, tags and indefinite lengths under an unknown key (or an indefinite text
    # under a known one): tests/protocol/test_vectors.py holds the bridge to the same vectors
    public = _key().public
    cases = _doc()["refused"]
    assert len(cases) >= 20
    for case in cases:
        for refuse in (
            lambda: messages.decode(bytes.fromhex(case["payload"])),
            lambda: messages.open_(bytes.fromhex(case["envelope"]), lambda kid: public),
        ):
            try:
                refuse()
            except ProtocolError as exc:
                assert exc.reason == case["reason"], (case["name"], exc.reason)
                continue
            raise AssertionError("accepted " + case["name"])


def test_missing_and_mistyped_fields_are_refused():
    fields = dict(RECEIVED[0][2])
    del fields["ack_seq"]
    for bad, reason in (
        ({0: 1, 1: 5, 2: "b", 3: 1, 4: 1, 5: 1, 10: "d"}, "missing_field"),
        ({0: 1, 1: 5, 2: "b", 3: 1, 4: 1, 5: 1, 10: "d", 11: "x"}, "bad_field"),
        ({0: 2, 1: 5}, "unsupported_version"),
        ({1: 5}, "missing_field"),
        ([1, 5], "not_a_map"),
    ):
        try:
            messages.decode(cbor.encode(bad))
        except ProtocolError as exc:
            assert exc.reason == reason, (bad, exc.reason)
            continue
        raise AssertionError(bad)


def test_fingerprints_the_bridge_refuses_are_refused_as_there():
    """protocol/fields.py IntMap: integer keys 0..23 (not a bool) and int64 values (not a
    bool); the packed form (protocol/packed.py) the same."""
    fields = _with(HEAD, SCORED, {"seq": 0, "features": b""})
    for fp in (
        {0: 1, True: 2},  # True is 1 to isinstance: a map with the keys 0..1 to the firmware
        {False: 5},
        {0: 1 << 63},
        {0: -(1 << 63) - 1},
        {0: 1, 1: 2, 3: 1 << 63},  # a gap: written as a map, checked as one
        {0: True},
        {24: 1},
    ):
        fields["fingerprint"] = fp
        try:
            messages.encode(messages.REPORT, fields)
        except ProtocolError as exc:
            assert exc.reason == "bad_field", (fp, exc.reason)
            continue
        raise AssertionError("encoded %r" % (fp,))
    for values in ({0: 1 << 63}, {0: 0, 1: -(1 << 63) - 1}):
        try:
            messages.pack(values)
        except ProtocolError:
            continue
        raise AssertionError("packed %r" % (values,))
    assert not messages.packable({0: 1, True: 2}) and messages.packable({0: 1, 1: 2})

"""Write tests/vectors/project.json: this project's COSE and message vectors.

A fixed Ed25519 key (RFC 8032 section 7.1 TEST 1) signs one example of every message kind and a
few raw payloads. Ed25519 is deterministic, so the file pins every byte of the wire format; the
firmware reproduces it byte for byte in MicroPython. Regenerate only when the contract changes
on purpose, and say so in the commit:

    python -m tools.gen_vectors
"""

from __future__ import annotations

import json
from pathlib import Path

import nacl.signing

from protocol import cbor, cose, envelope
from protocol import messages as m
from tools.typed_json import to_typed
from tools.vectors_refused import refused

OUT = Path(__file__).resolve().parents[1] / "tests" / "vectors" / "project.json"
SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
SHA_A = bytes.fromhex("5d41402abc4b2a76b9719d911017c592" * 2)
SHA_B = bytes(range(32))
HEAD = dict(sender="rig-07", boot=3, ts_ms=1_764_288_000_000)
BRIDGE = dict(sender="bridge-1", boot=1, ts_ms=1_764_288_000_500)
ESP32_FINGERPRINT = (992_313, -79_795, -229_127, -355_200, 509, 25_539, -84, -1_290, -114,
                     -1_294, 1_000, 0, 7_441, 796, 25_471) + (0,) * 9  # fmt: skip
"""A session's fingerprint as an ESP32 board in the unix port measured it."""
LEGACY = {"report": "report-map-fingerprint", "report-esp32": "report-esp32-map-fingerprint"}
"""Vectors written again as devices before the packed fingerprint wrote them (a CBOR map under
key 14; all 32 bytes of model_sha256): readers take them as the same message."""

SWIPES = (
    (6120, 7010, 5610, 4080, 1500000, 2950, 9870, -15110, 19620, 4200, 21800, 35100, 612, 4470,
     2030, 4380),
    (6310, 6920, 5830, 3950, 1416667, 2990, 9910, -14870, 21100, 3900, 22600, 36800, -215, 4510,
     1980, 4710),
)  # fmt: skip
"""Two swipes up the screen as a step-up confirmation carries them: each feature x 10^4."""
LIMIT_FINGERPRINT = (
    (1 << 30) - 1, 1 << 30, -(1 << 30), -(1 << 30) - 1,  # the ESP32's small-int edge (31 bits)
    (1 << 31) - 1, -(1 << 31),
    (1 << 62) - 1, 1 << 62, -(1 << 62), -(1 << 62) - 1,  # the 64-bit unix port's edge
    (1 << 63) - 1, -(1 << 63),  # int64's: the longest varint (ten bytes)
    0, 1, -1,
)  # fmt: skip
"""Fingerprint values at the edges where a MicroPython integer changes representation, and at
int64's: the firmware's `pack` must write them byte for byte as protocol.packed does."""


def examples() -> list[tuple[str, m.Message]]:
    scored = dict(model_id="risk-v1", model_sha256=SHA_A, risk_pm=37, mono_ms=5_025_113)
    return [
        (
            "birth",
            m.Birth(
                seq=8,
                agent_version="0.1.0",
                model_id="risk-v1",
                model_sha256=SHA_A,
                config_sha256=SHA_B,
                device_kind="phone",
                backlog=12,
                resume_seq=41,
                **HEAD,
            ),
        ),
        (
            "birth-config-version",  # a device that runs version 4 of its desired configuration
            m.Birth(
                seq=10,
                agent_version="0.1.0",
                model_id="risk-v1",
                model_sha256=SHA_A,
                config_sha256=SHA_B,
                device_kind="mcu",
                backlog=0,
                resume_seq=41,
                config_version=4,
                **HEAD,
            ),
        ),
        ("death", m.Death(seq=9, reason="lost", **HEAD)),
        (
            "report",
            m.Report(
                seq=42,
                features=bytes([0, 255, 17, 128, 127]),
                fingerprint={0: -1520, 1: 300, 2: 998_700},
                telemetry={"steps": 8123},
                **scored,
                **HEAD,
            ),
        ),
        (
            "report-esp32",  # as a board sends it: the model's SHA-256 cut to 8 bytes and a
            # whole fingerprint, packed (its last nine fields are 0 on a board: left out)
            m.Report(
                seq=12_345,
                model_id="risk-v1",
                model_sha256=SHA_A[: m.MODEL_SHA256_PREFIX],
                risk_pm=412,
                features=bytes([255, 2, 250, 247, 5, 251, 6, 248, 3, 3, 255, 255, 9, 250]),
                fingerprint=dict(enumerate(ESP32_FINGERPRINT)),
                mono_ms=344_701,
                telemetry={"imu.ok": 1},
                time_quality=0,
                **HEAD,
            ),
        ),
        (
            "report-located",
            m.Report(
                seq=48,
                features=b"",
                location=m.Location(
                    lat_e7=312_304_160, lon_e7=1_214_737_010, accuracy_m=8, source="gps"
                ),
                **scored,
                **HEAD,
            ),
        ),
        (
            "report-fingerprint-limits",  # packed (keys 0..n-1)
            m.Report(
                seq=51,
                features=b"",
                fingerprint=dict(enumerate(LIMIT_FINGERPRINT)),
                **scored,
                **HEAD,
            ),
        ),
        (
            "report-fingerprint-limits-map",  # a gap: a CBOR map
            m.Report(
                seq=52,
                features=b"",
                fingerprint={
                    0: (1 << 30) - 1,
                    2: -(1 << 30) - 1,
                    22: (1 << 63) - 1,
                    23: -(1 << 63),
                },
                **scored,
                **HEAD,
            ),
        ),
        (
            "report-cmd-reply",
            m.Report(seq=43, features=b"", cmd_seq=5, cmd_result="ok", **scored, **HEAD),
        ),
        (
            "report-stepup-strokes",
            m.Report(
                seq=50,
                features=b"",
                cmd_seq=6,
                cmd_result="confirmed",
                strokes=SWIPES,
                **scored,
                **HEAD,
            ),
        ),
        (
            "trigger-restock",
            m.Trigger(
                seq=44,
                rule="milk-low",
                priority=5,
                body=m.RestockBody(item="milk", level_pct=12, threshold_pct=25, est_cost_fen=2_590),
                **scored,
                **HEAD,
            ),
        ),
        (
            "trigger-health",
            m.Trigger(
                seq=45,
                rule="steps-7d",
                priority=3,
                body=m.HealthStreakBody(streak_days=7, goal_steps=10_000),
                **scored,
                **HEAD,
            ),
        ),
        (
            "trigger-ev",
            m.Trigger(
                seq=46,
                rule="ev-tier",
                priority=2,
                body=m.EvTierBody(km_30d=1_840, tier=2),
                **scored,
                **HEAD,
            ),
        ),
        (
            "trigger-emergency",
            m.Trigger(
                seq=47,
                rule="fall",
                priority=255,
                body=m.EmergencyBody(emergency="illness", source="fall", amount_fen=500_000),
                **scored,
                **HEAD,
            ),
        ),
        (
            "trigger-emergency-located",
            m.Trigger(
                seq=49,
                rule="sos",
                priority=255,
                body=m.EmergencyBody(emergency="disaster", source="explicit"),
                location=m.Location(
                    lat_e7=-338_688_000, lon_e7=1_512_093_000, accuracy_m=150_000, source="ip"
                ),
                **scored,
                **HEAD,
            ),
        ),
        ("ack", m.Ack(seq=100, device="rig-07", ack_seq=47, **BRIDGE)),
        ("bridge-state", m.BridgeState(seq=101, online=True, **BRIDGE)),
        (
            "decision",
            m.Decision(
                seq=102,
                user="u-1001",
                device="rig-07",
                device_seq=44,
                decision="allow",
                action="hold",
                result="ok",
                amount_fen=2_590,
                risk_pm=37,
                reasons=("restock",),
                received_ms=1_764_288_000_250,
                **BRIDGE,
            ),
        ),
        (
            "pool-state",
            m.PoolState(
                seq=103,
                user="u-1001",
                status="open",
                limit_fen=5_000_000,
                available_fen=4_997_410,
                outstanding_fen=0,
                held_fen=2_590,
                rate_bps=1_800,
                version=17,
                **BRIDGE,
            ),
        ),
        (
            "pool-state-updated",  # key 18 (updated_ms); "pool-state" is as older bridges wrote
            m.PoolState(
                seq=106,
                user="u-1001",
                status="open",
                limit_fen=5_000_000,
                available_fen=4_997_410,
                outstanding_fen=0,
                held_fen=2_590,
                rate_bps=1_800,
                version=18,
                updated_ms=1_764_288_000_200,
                **BRIDGE,
            ),
        ),
        (
            "pool-event",
            m.PoolEvent(
                seq=107,
                user="u-1001",
                version=18,
                index=0,
                count=1,
                event="hold_placed",
                at_ms=1_764_288_000_200,
                data={"hold_id": "rig-07:44", "amount_fen": 2_590, "expires_ms": 1_764_288_900_200},
                command="hold",
                key="rig-07:44:hold",
                result="ok",
                **BRIDGE,
            ),
        ),
        (
            "payout",
            m.Payout(
                seq=108,
                user="u-1001",
                amount_fen=500_000,
                tier="illness",
                key="phone-3:12:emergency",
                version=19,
                device="phone-3",
                device_seq=12,
                received_ms=1_764_288_000_300,
                budget_ms=15_000,
                **BRIDGE,
            ),
        ),
        (
            "application",
            m.Application(
                seq=45,
                applicant={  # in deterministic CBOR order (shorter keys first), as decoded
                    "housing": "own",
                    "purpose": "retraining",
                    "age_in_years": 40,
                    "credit_amount": 894,
                    "duration_in_month": 10,
                },
                **HEAD,
            ),
        ),
        (
            "command",
            m.Command(
                seq=104, device="rig-07", command="config", args={"report.interval_s": 30}, **BRIDGE
            ),
        ),
        (
            "command-desired-config",  # the desired configuration, version 4, with an expiry
            m.Command(
                seq=106,
                device="rig-07",
                command="config",
                args={"config_version": 4, "report.interval_s": 30},  # canonical key order
                expires_ms=1_764_291_600_500,
                **BRIDGE,
            ),
        ),
        (
            "risk",
            m.Risk(
                seq=105,
                device="rig-07",
                category="rejection",
                reason="bad_signature",
                detail="signature does not verify",
                device_seq=48,
                **BRIDGE,
            ),
        ),
        (
            "enrollment",
            m.Enrollment(
                seq=1,
                fleet="demo",
                device_kind="phone",
                public_key=bytes(nacl.signing.SigningKey(SEED).verify_key),
                baseline={0: -1500, 1: 310},
                identity={"serial": "00000000a1b2"},
                **HEAD,
            ),
        ),
        (
            "enrollment-claim",  # enrollment by claim: the record carries a claim token
            m.Enrollment(
                seq=1,
                fleet="demo",
                device_kind="mcu",
                public_key=bytes(nacl.signing.SigningKey(SEED).verify_key),
                claim=bytes(range(40)),
                **HEAD,
            ),
        ),
        (
            "report-time-floor",  # a device without a trusted clock yet: time from its floor
            m.Report(
                seq=49,
                model_id="risk-v1",
                model_sha256=SHA_A,
                risk_pm=12,
                features=bytes(8),
                mono_ms=5_000,
                time_quality=0,
                **HEAD,
            ),
        ),
        (
            "claim-answer",
            m.ClaimAnswer(
                seq=107, device="rig-07", result="refused", reason="claim_used", **BRIDGE
            ),
        ),
        (
            "diag",
            m.Diag(
                seq=106,
                uptime_s=3600,
                crash="unclean_exit: the previous run ended without stopping",
                crash_ms=1_764_287_000_000,
                figures={"rss_kb": 41_000, "outbox_backlog": 3},
                log=("12:00:00 INFO agent: started", "12:00:01 INFO link: connected"),
                **HEAD,
            ),
        ),
    ]


def legacy(key: nacl.signing.SigningKey) -> list[dict[str, str]]:
    """The LEGACY vectors: payload and envelope as an older device wrote them, and the name of
    the vector whose message they decode to."""
    out = []
    for name, msg in examples():
        if name not in LEGACY:
            continue
        assert isinstance(msg, m.Report)
        old = msg.to_map()
        old[11] = SHA_A  # all 32 bytes: the prefix came with the packed form
        old[14] = msg.fingerprint
        payload = cbor.dumps(old)
        assert payload != m.encode(msg)
        kid = cose.kid_for(key.verify_key)
        out.append({
            "name": LEGACY[name],
            "same_as": name,
            "payload": payload.hex(),
            "envelope": cose.sign1(payload, key, kid).hex(),
        })  # fmt: skip
    return out


def main() -> None:
    key = nacl.signing.SigningKey(SEED)
    kid = cose.kid_for(key.verify_key)
    raw = [b"", b"hello", bytes(range(256))]
    doc = {
        "about": "COSE_Sign1/Ed25519 and message vectors of this project (tools/gen_vectors.py)",
        "key": {"seed": SEED.hex(), "public": bytes(key.verify_key).hex(), "kid": kid.hex()},
        "cose": [{"payload": p.hex(), "envelope": cose.sign1(p, key, kid).hex()} for p in raw],
        "messages": [
            {
                "name": name,
                "kind": type(msg).__name__,
                "map": to_typed(_plain_map(msg)),
                "payload": m.encode(msg).hex(),
                "envelope": envelope.seal(msg, key).hex(),
            }
            for name, msg in examples()
        ],
        "refused": refused(key, examples()),
        "legacy": legacy(key),
    }
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {OUT} ({len(doc['messages'])} messages)")


def _plain_map(msg: m.Message) -> dict[int, object]:
    return dict(sorted(msg.to_map().items()))


if __name__ == "__main__":
    main()

"""What the firmware seals in real MicroPython, the bridge's own protocol.envelope.unseal
accepts and decodes to the same fields; and an independent COSE library (pycose) verifies it."""

from __future__ import annotations

import os

import nacl.signing

from protocol import cose, envelope
from protocol import messages as m
from tests.firmware.conftest import MicroPython
from tests.harness.independent import pycose_verify

SCRIPT = """
import ed25519, messages
key = ed25519.SigningKey(bytes.fromhex(%r))
head = {"sender": "esp32-rig-3", "seq": 0, "boot": 17, "ts_ms": 1764300000123}
sha = bytes(range(32))
report = dict(head, model_id="risk-v1", model_sha256=sha, risk_pm=412, mono_ms=86400123,
              features=bytes(range(20)), fingerprint={0: -7, 3: 1 << 40},
              telemetry={"heap_free": 81234}, cmd_seq=9, cmd_result="ok")
birth = dict(head, seq=6, agent_version="fw-0.1.0", model_id="risk-v1", model_sha256=sha,
             config_sha256=sha, device_kind="mcu", backlog=3, resume_seq=118)
death = dict(head, seq=7, reason="lost")
trigger = dict(head, model_id="risk-v1", model_sha256=sha, risk_pm=999, mono_ms=5,
               rule="fall", priority=255, trigger="emergency",
               body={"emergency": "illness", "source": "fall", "amount_fen": 0})
print(messages.seal(messages.BIRTH, birth, key).hex())
print(messages.seal(messages.DEATH, death, key).hex())
unnumbered = messages.encode(messages.REPORT, report)
import cose
print(cose.sign1(messages.with_seq(unnumbered, 119), key).hex())
print(messages.seal(messages.TRIGGER, trigger, key).hex())
"""


def test_bridge_unseal_accepts_what_the_firmware_sealed(micropython: MicroPython) -> None:
    seed = os.urandom(32)
    key = nacl.signing.SigningKey(seed)
    out = micropython.code(SCRIPT % seed.hex(), heapsize="64k").split()
    assert len(out) == 4
    resolve = {cose.kid_for(key.verify_key): key.verify_key}.get
    sealed = [bytes.fromhex(hexed) for hexed in out]
    decoded = []
    for data in sealed:
        signed, message = envelope.unseal(data, resolve)
        assert signed.key == key.verify_key
        decoded.append(message)
    independent = pycose_verify([(bytes(key.verify_key), data) for data in sealed])
    assert [r["ok"] for r in independent] == [True] * len(sealed)
    birth, death, report, trigger = decoded
    head = {"sender": "esp32-rig-3", "boot": 17, "ts_ms": 1_764_300_000_123}
    sha = bytes(range(32))
    assert birth == m.Birth(
        seq=6,
        agent_version="fw-0.1.0",
        model_id="risk-v1",
        model_sha256=sha,
        config_sha256=sha,
        device_kind="mcu",
        backlog=3,
        resume_seq=118,
        **head,
    )
    assert death == m.Death(seq=7, reason="lost", **head)
    assert report == m.Report(
        seq=119,
        model_id="risk-v1",
        model_sha256=sha,
        risk_pm=412,
        mono_ms=86_400_123,
        features=bytes(range(20)),
        fingerprint={0: -7, 3: 1 << 40},
        telemetry={"heap_free": 81_234},
        cmd_seq=9,
        cmd_result="ok",
        **head,
    )
    assert trigger == m.Trigger(
        seq=0,
        model_id="risk-v1",
        model_sha256=sha,
        risk_pm=999,
        mono_ms=5,
        rule="fall",
        priority=255,
        body=m.EmergencyBody(emergency="illness", source="fall"),
        **head,
    )

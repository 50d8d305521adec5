"""A key rotation interrupted by a crash is finished at the next start, never left stuck."""

from __future__ import annotations

import shutil
from pathlib import Path

import nacl.signing

from agent import config, keys
from agent.bootstrap import build_agent
from agent.outbox import Outbox
from protocol import cose, envelope
from protocol import messages as m
from tests.agent.harness import provision

BRIDGE = bytes(nacl.signing.SigningKey(bytes(range(100, 132))).verify_key).hex()


def _rotated_record(dev_dir: Path, new: nacl.signing.SigningKey) -> bytes:
    old = m.decode_as(cose.peek_payload((dev_dir / "enrollment.cbor").read_bytes()), m.Enrollment)
    record = m.Enrollment(
        sender=old.sender,
        seq=old.seq + 1,
        boot=1,
        ts_ms=1,
        fleet=old.fleet,
        device_kind=old.device_kind,
        public_key=bytes(new.verify_key),
        baseline=old.baseline,
        prev_kid=old.prev_kid,
    )
    return envelope.seal(record, new)


def test_crash_between_new_record_and_key_promotion(tmp_path: Path) -> None:
    dev = provision(tmp_path, "rig-1", "phone", "mqtt://127.0.0.1:9", BRIDGE)
    cfg = config.load(dev.config)
    old_key = keys.load(cfg.key_file)
    # The agent numbered and signed two messages with the old key before rotating.
    agent = build_agent(cfg, old_key)
    agent.report()
    agent.report()
    agent.outbox.assign(10, agent.signer.sign)
    agent.outbox.close()
    # Rotation confirmed: pending key made, new record written ... and the power went.
    new_key = keys.generate(keys.pending_path(cfg.key_file))
    cfg.enrollment_file.write_bytes(_rotated_record(dev.dir, new_key))
    shutil.copy(cfg.enrollment_file, dev.dir / "rotation.cbor")

    agent = build_agent(cfg, keys.load(cfg.key_file))  # what `edge-agent run` does at start
    try:
        assert bytes(agent.signer.key) == bytes(new_key)  # the promotion was finished
        assert bytes(keys.load(cfg.key_file)) == bytes(new_key)
        assert not keys.pending_path(cfg.key_file).exists()
        assert not (dev.dir / "rotation.cbor").exists()
        assert agent.enrollment is not None and agent.enrollment.seq == 2
        # The stored messages signed by the old key were signed again with the new one.
        kids = {cose.peek_kid(e.envelope or b"") for e in agent.outbox.sent_after(0, 10)}
        assert kids == {cose.kid_for(new_key.verify_key)}
    finally:
        agent.outbox.close()


def test_crash_after_promotion_before_resigning(tmp_path: Path) -> None:
    dev = provision(tmp_path, "rig-2", "phone", "mqtt://127.0.0.1:9", BRIDGE)
    cfg = config.load(dev.config)
    agent = build_agent(cfg, keys.load(cfg.key_file))
    agent.report()
    agent.outbox.assign(10, agent.signer.sign)
    agent.outbox.close()
    new_key = keys.generate(keys.pending_path(cfg.key_file))
    cfg.enrollment_file.write_bytes(_rotated_record(dev.dir, new_key))
    keys.promote_pending(cfg.key_file)  # ... and the power went before the re-signing

    agent = build_agent(cfg, keys.load(cfg.key_file))
    try:
        (entry,) = agent.outbox.sent_after(0, 10)
        assert cose.peek_kid(entry.envelope or b"") == cose.kid_for(new_key.verify_key)
        signed, _ = envelope.unseal(entry.envelope or b"", lambda kid: new_key.verify_key)
        assert signed.payload  # verifies with the new key, same content
    finally:
        agent.outbox.close()
    assert Outbox.peek(cfg.data_dir / "outbox.sqlite3") is not None

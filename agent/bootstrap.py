"""Build a ready-to-run Agent from a config and its key: outbox, overrides, enrollment,
model (with rollback to the configured one), sensor source and signer."""

from __future__ import annotations

import contextlib
import logging

import nacl.signing

from agent import commands, config, keys
from agent.assess import Assessor
from agent.clock import Clock
from agent.errors import AgentError
from agent.link import Signer
from agent.outbox import Outbox
from agent.runtime import Agent
from agent.sensors.factory import source_for
from protocol import cose
from protocol import messages as m
from protocol.errors import ProtocolError

log = logging.getLogger(__name__)


class EnrollmentError(AgentError):
    """The enrollment record is missing or does not belong to this key."""


def read_enrollment(cfg: config.AgentConfig) -> m.Enrollment:
    """The device's enrollment record: self-signed (by the key it names) and this device's.

    It names the key the device uses now and that key's generation (seq); after a rotation it
    is rewritten for the new key (agent.commands)."""
    try:
        data = cfg.enrollment_file.read_bytes()
    except OSError as exc:
        raise EnrollmentError(
            f"enrollment record {cfg.enrollment_file} cannot be read ({exc.strerror}); "
            "provision the device with 'edge-agent provision'"
        ) from exc
    try:
        record = m.decode_as(cose.peek_payload(data), m.Enrollment)
        own = nacl.signing.VerifyKey(record.public_key)
        own_kid = cose.kid_for(own)
        cose.verify1(data, lambda kid: own if kid == own_kid else None)
    except ProtocolError as exc:
        raise EnrollmentError(
            f"enrollment record {cfg.enrollment_file} is not a self-signed record ({exc})"
        ) from exc
    if record.sender != cfg.device_id:
        raise EnrollmentError(
            f"{cfg.enrollment_file} is the record of {record.sender}, not of {cfg.device_id}"
        )
    return record


def settle_rotation(
    cfg: config.AgentConfig, key: nacl.signing.SigningKey, record: m.Enrollment
) -> nacl.signing.SigningKey:
    """Finish a key rotation a crash interrupted; the key to use.

    A confirmed rotation writes the new enrollment record first, then promotes the pending key:
    a record naming the pending key means the promotion still has to happen."""
    if record.public_key == bytes(key.verify_key):
        rotation = cfg.data_dir / "rotation.cbor"
        if rotation.exists():
            with contextlib.suppress(ProtocolError, OSError):
                pending = m.decode_as(cose.peek_payload(rotation.read_bytes()), m.Enrollment)
                if pending.public_key == record.public_key:  # confirmed before a crash
                    rotation.unlink()
        return key
    pending_path = keys.pending_path(cfg.key_file)
    if pending_path.exists() and bytes(keys.load(pending_path).verify_key) == record.public_key:
        log.warning("finishing a key rotation interrupted by a crash")
        key = keys.promote_pending(cfg.key_file)
        (cfg.data_dir / "rotation.cbor").unlink(missing_ok=True)
        return key
    raise EnrollmentError(
        f"{cfg.enrollment_file} names another key than {cfg.key_file}; provision the device again"
    )


def build_agent(
    cfg: config.AgentConfig, key: nacl.signing.SigningKey, clock: Clock | None = None
) -> Agent:
    """The agent and every component it runs, all on one clock (`clock`, else the real one)."""
    clock = clock or Clock()
    record = read_enrollment(cfg)
    key = settle_rotation(cfg, key, record)
    outbox = Outbox.open(cfg.data_dir / "outbox.sqlite3", cfg.outbox_max_messages)
    signer = Signer(key)
    resigned = outbox.resign(signer.sign, keep_kid=cose.kid_for(key.verify_key))
    if resigned:  # a crash came between a key promotion and the re-signing
        log.warning("re-signed %d stored messages with the current key", resigned)
    if outbox.recovered_from:
        log.warning("the corrupt outbox was kept at %s for inspection", outbox.recovered_from)
    overrides = commands.load_overrides(outbox)
    if overrides:
        cfg = commands.apply_overrides(cfg.path, overrides)
        outbox.max_messages = cfg.outbox_max_messages
    assessor = None
    installed = commands.current_model(cfg.data_dir)
    if installed:
        try:
            assessor = Assessor.load(installed[0], installed[1], record.baseline)
        except AgentError as exc:
            log.warning(
                "installed model %s does not load (%s); rolling back to %s",
                installed[0],
                exc,
                cfg.model_path,
            )
    if assessor is None:
        assessor = Assessor.load(cfg.model_path, None, record.baseline)
    source = source_for(cfg, outbox.boot, clock.wall_ms)
    return Agent(cfg, source, assessor, outbox, signer, enrollment=record, clock=clock)

"""Build a ready-to-run Agent from a config and its key: outbox, overrides, enrollment,
model (with rollback to the configured one), sensor source and signer."""

from __future__ import annotations

import logging

import nacl.signing

from agent import commands, config
from agent.assess import Assessor
from agent.errors import AgentError
from agent.link import Signer
from agent.outbox import Outbox
from agent.runtime import Agent
from agent.sensors.factory import source_for
from protocol import cose, envelope
from protocol import messages as m
from protocol.errors import ProtocolError

log = logging.getLogger(__name__)


class EnrollmentError(AgentError):
    """The enrollment record is missing or does not belong to this key."""


def read_enrollment(cfg: config.AgentConfig, key: nacl.signing.SigningKey) -> m.Enrollment:
    try:
        data = cfg.enrollment_file.read_bytes()
    except OSError as exc:
        raise EnrollmentError(
            f"enrollment record {cfg.enrollment_file} cannot be read ({exc.strerror}); "
            "provision the device with 'edge-agent provision'"
        ) from exc
    mine = key.verify_key

    def resolve(kid: bytes) -> nacl.signing.VerifyKey | None:
        return mine if kid == cose.kid_for(mine) else None

    try:
        _signed, record = envelope.unseal(data, resolve)
    except ProtocolError as exc:
        raise EnrollmentError(
            f"enrollment record {cfg.enrollment_file} is not signed by {cfg.key_file} ({exc})"
        ) from exc
    if not isinstance(record, m.Enrollment) or record.sender != cfg.device_id:
        raise EnrollmentError(f"{cfg.enrollment_file} is not this device's enrollment record")
    return record


def build_agent(cfg: config.AgentConfig, key: nacl.signing.SigningKey) -> Agent:
    record = read_enrollment(cfg, key)
    outbox = Outbox.open(cfg.data_dir / "outbox.sqlite3", cfg.outbox_max_messages)
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
    source = source_for(cfg, outbox.boot)
    return Agent(cfg, source, assessor, outbox, Signer(key))

"""Commands from the cloud, already verified (bridge key) and replay-checked by the link.

The handler decides and does the command's own durable work (key and model files, the stored
overrides); it changes no other component. It returns an `Outcome`: the answer and the effects
the agent applies (agent.runtime): a new configuration, an outbox bound, a rotated key, a new
model, an enrollment to publish. The agent then answers with a report whose `cmd_seq` is the
command's seq and whose `cmd_result` is "ok", "pending" or an error code with a short reason.

- ping: answer at once (a fresh, scored report).
- config: dotted keys (`report.interval_s`) from the small set that is safe to change remotely;
  validated with the same schema as the file and kept across restarts. With a `config_version`
  argument it is the bridge's whole desired configuration of that version: it replaces the
  overrides, the version is stored with them (births report it), and an older version is
  refused; the same version again answers "ok" (the bridge may resend it after a reconnect).
- rotate: without arguments, make the next key, send an enrollment signed by the current key on
  the `enroll` channel and answer "pending"; with `confirm_kid` (the bridge registered it),
  promote the new key, re-sign the unacked outbox and answer "ok".
- diag: answer with a signed Diag message on the diag channel (agent.diag): the last `lines`
  log lines, the last crash, uptime, memory, outbox and link figures, cut to 3 KiB.
- model: fetch the model and its metadata from the URLs given, check both SHA-256 against the
  signed command, load and self-test it, then swap atomically; a model that fails keeps the old
  one in place (answer "model_rejected: ...").
- update: a manifest signed by the bridge (agent.update.manifest); the download and the switch
  go on in the background (answer "pending", or "refused: <why>", e.g. a downgrade).
- stepup: the bridge holds an action until the user confirms (`challenge`, `event`,
  `expires_ms`); answer "confirmed" or "declined" (a simulated device knows whether its user
  is the owner; a real one has no prompt here and declines). A confirmation carries the
  Touchalytics features of the confirming swipes (`strokes`), which the bridge compares with
  the user's touch template.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tomllib
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nacl.signing

from agent import config as config_mod
from agent import diag, keys
from agent.assess import Assessor
from agent.errors import AgentError
from agent.jsonfile import read_json, write_json_atomic
from agent.strokes import features
from protocol import envelope
from protocol import messages as m
from protocol.messages import STEPUP_CONFIRMED, STEPUP_DECLINED
from protocol.strokes import MAX_STROKES, FixedStroke, to_fixed

if TYPE_CHECKING:
    from agent.runtime import Agent

log = logging.getLogger(__name__)

REMOTE_KEYS = m.REMOTE_CONFIG_KEYS
MAX_MODEL_BYTES = 4 * 1024 * 1024
DIAG_LINES = 50
CONFIRM_SWIPES = min(10, MAX_STROKES)
"""Swipes a step-up confirmation carries: the confirming swipe and the scrolling before it
(one swipe alone identifies a person far less surely: docs/risk.md, touch behaviour)."""


@dataclass(frozen=True)
class ConfigChanged:
    """The configuration with the remote overrides applied (validated, already stored)."""

    cfg: config_mod.AgentConfig


@dataclass(frozen=True)
class OutboxResized:
    """The outbox's bound changed."""

    max_messages: int


@dataclass(frozen=True)
class KeyRotated:
    """The pending key is promoted on disk, with its record: sign with it from now on and
    re-sign the unacked outbox."""

    key: nacl.signing.SigningKey
    record: m.Enrollment


@dataclass(frozen=True)
class ModelReplaced:
    """A model that loaded and passed its self-test; its files are in place."""

    assessor: Assessor


@dataclass(frozen=True)
class PublishEnrollment:
    """Send this signed enrollment on the enroll channel (a rotation waiting for the bridge)."""

    data: bytes


@dataclass(frozen=True)
class PublishDiag:
    """Send this signed diagnostics answer on the diag channel (outside the outbox)."""

    data: bytes


Effect = (
    ConfigChanged | OutboxResized | KeyRotated | ModelReplaced | PublishEnrollment | PublishDiag
)


@dataclass(frozen=True)
class Outcome:
    """The answer to a command (`cmd_result`; the report keeps 64 characters) and what the
    agent applies."""

    result: str
    effects: tuple[Effect, ...] = ()
    strokes: tuple[FixedStroke, ...] = ()  # the answering report's (a step-up confirmation)


class CommandHandler:
    """Decides commands against the agent's current state (read, never written)."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.current_seq = 0

    @property
    def rotation_file(self) -> Path:
        return self.agent.cfg.data_dir / "rotation.cbor"

    def handle(self, cmd: m.Command) -> Outcome:
        self.current_seq = cmd.seq  # the diag answer carries it
        try:
            outcome: Outcome = getattr(self, f"_{cmd.command}")(cmd.args)
        except AgentError as exc:
            outcome = Outcome(f"error: {exc}")
        except Exception as exc:  # a command must never take the agent down
            log.exception("command %s failed", cmd.command)
            outcome = Outcome(f"error: {type(exc).__name__}")
        log.info("command %s (seq %d): %s", cmd.command, cmd.seq, outcome.result)
        return outcome

    def pending_enrollment(self) -> bytes | None:
        """A rotation still waiting for its confirmation, to send again on every connect (the
        bridge may have missed it)."""
        try:
            return self.rotation_file.read_bytes()
        except FileNotFoundError:
            return None

    # ---- ping ---------------------------------------------------------------------------------

    def _ping(self, args: dict[str, Any]) -> Outcome:
        return Outcome("ok")

    # ---- diag ---------------------------------------------------------------------------------

    def _diag(self, args: dict[str, Any]) -> Outcome:
        """The last `lines` log lines (default 50), the last crash, uptime and figures."""
        wanted = args.get("lines", DIAG_LINES)
        if isinstance(wanted, bool) or not isinstance(wanted, int) or not 0 <= wanted <= 200:
            return Outcome("refused: lines must be an integer from 0 to 200")
        agent, seq = self.agent, self.current_seq
        crash, crash_ms = diag.last_crash(agent.cfg.data_dir)
        answer = diag.fit(
            m.Diag(
                sender=agent.cfg.device_id,
                seq=seq,
                boot=agent.outbox.boot,
                ts_ms=agent.clock.wall_ms(),
                uptime_s=max(0, agent.clock.mono_ms() - agent.started_mono_ms) // 1000,
                crash=crash,
                crash_ms=crash_ms,
                figures=agent.figures(),
            ),
            diag.RING.tail(wanted),
        )
        return Outcome("ok", (PublishDiag(agent.signer.seal(answer)),))

    # ---- update (agent.update) ------------------------------------------------------------------

    def _update(self, args: dict[str, Any]) -> Outcome:
        manifest = args.get("manifest")
        if not isinstance(manifest, bytes):
            return Outcome("refused: argument manifest missing or mistyped")
        return Outcome(self.agent.updater.offer(manifest))

    # ---- stepup -------------------------------------------------------------------------------

    def _stepup(self, args: dict[str, Any]) -> Outcome:
        """The bridge asks the user to confirm a held action (`event`, before `expires_ms`).
        The answer is this command's reply report: freshly captured, signed and scored by the
        bridge like any other, so only the owner's own session can confirm, and carrying the
        confirming swipes, which the bridge matches with the user's touch template. A simulated
        device knows whether its user is the owner (`[sensors] impostor`; with
        `impostor_confirms` a thief who presses confirm, with their own swipes); a real one
        would prompt its user, which this agent has no screen for: it declines."""
        if not isinstance(args.get("challenge"), bytes) or not isinstance(args.get("event"), str):
            raise AgentError("stepup needs a challenge (bytes) and an event (text)")
        cfg = self.agent.cfg
        if cfg.source != "sim" or (cfg.impostor and not cfg.impostor_confirms):
            return Outcome(STEPUP_DECLINED)
        return Outcome(STEPUP_CONFIRMED, strokes=self._swipes(cfg.impostor))

    def _swipes(self, stranger: bool) -> tuple[FixedStroke, ...]:
        """The confirming swipes' features as they travel: the simulated user's (the owner's,
        or with `stranger` the impostor's); none from a source without a touch screen."""
        from agent.sensors.sim import SimSource  # the simulator only where it is used

        source = self.agent.source
        if not isinstance(source, SimSource):
            return ()
        return tuple(to_fixed(features(s)) for s in source.swipes(CONFIRM_SWIPES, stranger))

    # ---- config -------------------------------------------------------------------------------

    def _config(self, args: dict[str, Any]) -> Outcome:
        args = dict(args)
        version = args.pop(m.CONFIG_VERSION_ARG, None)
        bad = sorted(set(args) - REMOTE_KEYS)
        if bad:
            return Outcome(f"refused: {bad[0]} cannot be set remotely")
        outbox = self.agent.outbox
        if version is None:  # a change merged into the overrides
            overrides = dict(load_overrides(outbox))
            overrides.update(args)
            docs: dict[str, object] = {"config_overrides": overrides}
        else:  # the bridge's whole desired state of that version (cloud_bridge.desired)
            if isinstance(version, bool) or not isinstance(version, int) or version < 1:
                return Outcome(f"refused: {m.CONFIG_VERSION_ARG} must be a positive integer")
            applied = config_version(outbox)
            if version < applied:
                return Outcome(f"refused: version {version} is older than {applied} applied")
            overrides = args
            docs = {"config_overrides": overrides, CONFIG_VERSION_KEY: version}
        cfg = apply_overrides(self.agent.cfg.path, overrides)  # raises ConfigError if invalid
        outbox.put_state(docs)  # the overrides and their version in one transaction
        return Outcome("ok", (ConfigChanged(cfg), OutboxResized(cfg.outbox_max_messages)))

    # ---- rotate -------------------------------------------------------------------------------

    def _rotate(self, args: dict[str, Any]) -> Outcome:
        cfg = self.agent.cfg
        pending = keys.pending_path(cfg.key_file)
        generation = (self.agent.enrollment.seq if self.agent.enrollment else 1) + 1
        old = self.agent.signer.key
        confirm = args.get("confirm_kid")
        if confirm is not None:
            if not pending.exists() or keys.kid(keys.load(pending)) != confirm:
                return Outcome("refused: confirm_kid is not the pending key")
            new = keys.load(pending)
            # Crash-safe order: the new record first (startup finishes a promotion it names),
            # then the key, then the stored messages (startup re-signs any left behind, and
            # drops a rotation file the record already names).
            record = self._record(new, generation, prev_kid=keys.kid(old))
            write_atomic(cfg.enrollment_file, envelope.seal(record, new))
            keys.promote_pending(cfg.key_file)
            self.rotation_file.unlink(missing_ok=True)
            return Outcome("ok", (KeyRotated(new, record),))
        new_key = keys.load(pending) if pending.exists() else keys.generate(pending)
        data = envelope.seal(self._record(new_key, generation, prev_kid=keys.kid(old)), old)
        write_atomic(self.rotation_file, data)
        return Outcome("pending", (PublishEnrollment(data),))

    def _record(self, key: Any, generation: int, prev_kid: bytes) -> m.Enrollment:
        cfg = self.agent.cfg
        return m.Enrollment(
            sender=cfg.device_id,
            seq=generation,
            boot=self.agent.outbox.boot,
            ts_ms=self.agent.clock.wall_ms(),
            fleet=cfg.fleet,
            device_kind=cfg.kind,
            public_key=bytes(key.verify_key),
            baseline=self.agent.assessor.baseline_wire,
            identity=self.agent.enrollment.identity if self.agent.enrollment else {},
            prev_kid=prev_kid,
        )

    # ---- model --------------------------------------------------------------------------------

    def _model(self, args: dict[str, Any]) -> Outcome:
        need = {"model_id": str, "sha256": bytes, "url": str, "meta_url": str, "meta_sha256": bytes}
        for name, kind in need.items():
            if not isinstance(args.get(name), kind):
                return Outcome(f"refused: argument {name} missing or mistyped")
        models = self.agent.cfg.data_dir / "models"
        models.mkdir(parents=True, exist_ok=True)
        sha = args["sha256"]
        try:
            blob = _fetch(args["url"], sha)
            meta = _fetch(args["meta_url"], args["meta_sha256"])
        except AgentError as exc:
            return Outcome(f"model_rejected: {exc}")
        model_path = models / f"{sha.hex()[:16]}.tflite"
        meta_path = model_path.with_suffix(".json")
        for path, data in ((model_path, blob), (meta_path, meta)):
            write_atomic(path, data)
        try:
            candidate = self.agent.assessor.with_model(model_path, meta_path)
            candidate.assess(self.agent.source.capture())  # self-test before the swap
        except Exception as exc:
            model_path.unlink(missing_ok=True)
            meta_path.unlink(missing_ok=True)
            return Outcome(f"model_rejected: {str(exc)[:40]}")
        # The swap: one rename of the pointer file; the old files stay for a rollback.
        write_json_atomic(
            models / "current.json",
            {"model": model_path.name, "meta": meta_path.name, "model_id": args["model_id"]},
        )
        return Outcome("ok", (ModelReplaced(candidate),))


def write_atomic(path: Path, data: bytes) -> None:
    """Write whole, fsync, rename into place, fsync the directory."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fetch(url: str, sha256: bytes) -> bytes:
    if not url.startswith(("file:", "http://", "https://")):
        raise AgentError("url must be file:, http:// or https://")
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            data: bytes = response.read(MAX_MODEL_BYTES + 1)
    except OSError as exc:
        raise AgentError(f"fetch failed: {exc}") from exc
    if len(data) > MAX_MODEL_BYTES:
        raise AgentError("larger than 4 MiB")
    if hashlib.sha256(data).digest() != sha256:
        raise AgentError("sha256 mismatch")
    return data


CONFIG_VERSION_KEY = "config_version"
"""The outbox's key/value entry holding the desired-configuration version applied."""


def config_version(outbox: Any) -> int:
    """The version of the bridge's desired configuration applied (0: none); births carry it."""
    raw = outbox.get_json(CONFIG_VERSION_KEY, 0)
    return raw if isinstance(raw, int) and not isinstance(raw, bool) else 0


def load_overrides(outbox: Any) -> dict[str, Any]:
    raw = outbox.get_json("config_overrides", {})
    return raw if isinstance(raw, dict) else {}


def apply_overrides(path: Path, overrides: dict[str, Any]) -> config_mod.AgentConfig:
    """The config file with dotted-key overrides applied, validated by the same schema."""
    raw = path.read_bytes()
    doc = tomllib.loads(raw.decode("utf-8"))
    for dotted, value in overrides.items():
        section, _, key = dotted.partition(".")
        doc.setdefault(section, {})[key] = value
    return config_mod.build(doc, path, hashlib.sha256(raw).digest())


def current_model(data_dir: Path) -> tuple[Path, Path] | None:
    """The model installed by a model command, if any (else the configured one is used)."""
    pointer = read_json(data_dir / "models" / "current.json")
    if not isinstance(pointer, dict):
        return None
    base = data_dir / "models"
    model, meta = base / str(pointer.get("model")), base / str(pointer.get("meta"))
    return (model, meta) if model.exists() and meta.exists() else None

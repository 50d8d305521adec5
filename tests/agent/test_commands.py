"""Commands return effects; the handler changes nothing of the agent, the agent applies them.

A real provisioned device (no broker: the link is never started).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import nacl.signing
import pytest

from agent import commands as cmds
from agent import config, keys
from agent.bootstrap import build_agent
from agent.runtime import Agent
from protocol import cose
from protocol import messages as m
from protocol.strokes import STROKE_FEATURES
from tests.agent.harness import provision

BRIDGE = bytes(nacl.signing.SigningKey(bytes(range(100, 132))).verify_key).hex()


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    dev = provision(tmp_path, "cmd-1", "phone", "mqtt://127.0.0.1:9", BRIDGE, interval_s=30)
    cfg = config.load(dev.config)
    built = build_agent(cfg, keys.load(cfg.key_file))
    yield built
    built.outbox.close()


def command(agent: Agent, name: str, seq: int = 1, **args: object) -> m.Command:
    return m.Command(
        sender="bridge",
        seq=seq,
        boot=1,
        ts_ms=1,
        device=agent.cfg.device_id,
        command=name,
        args=args,  # type: ignore[arg-type]
    )


def test_config_returns_the_new_config_and_bound_and_changes_nothing_itself(agent: Agent) -> None:
    before = agent.cfg
    outcome = agent.handler.handle(
        command(agent, "config", **{"report.interval_s": 5, "outbox.max_messages": 500})
    )
    assert outcome.result == "ok"
    changed, resized = outcome.effects
    assert isinstance(changed, cmds.ConfigChanged)
    assert changed.cfg.report_interval_s == 5
    assert resized == cmds.OutboxResized(500)
    assert agent.cfg is before and agent.outbox.max_messages != 500  # not applied yet
    for effect in outcome.effects:
        agent.apply(effect)
    assert agent.cfg.report_interval_s == 5
    assert agent.outbox.max_messages == 500
    assert cmds.load_overrides(agent.outbox) == {
        "report.interval_s": 5,
        "outbox.max_messages": 500,
    }


@pytest.mark.parametrize(
    ("args", "result"),
    [
        ({"mqtt.url": "mqtt://evil:1883"}, "refused: mqtt.url cannot be set remotely"),
        ({"report.interval_s": -1}, "error: "),
    ],
)
def test_a_refused_config_has_no_effect_and_stores_nothing(
    agent: Agent, args: dict[str, object], result: str
) -> None:
    outcome = agent.handler.handle(command(agent, "config", **args))
    assert outcome.result.startswith(result)
    assert outcome.effects == ()
    assert cmds.load_overrides(agent.outbox) == {}


def test_rotation_is_pending_then_confirmed_and_the_agent_swaps_the_key(agent: Agent) -> None:
    old = agent.signer.key
    agent.report()
    agent.outbox.assign(10, agent.signer.sign)  # one numbered message signed by the old key
    pending = agent.handler.handle(command(agent, "rotate", seq=1))
    assert pending.result == "pending"
    (publish,) = pending.effects
    assert publish == cmds.PublishEnrollment((agent.cfg.data_dir / "rotation.cbor").read_bytes())
    new = keys.load(keys.pending_path(agent.cfg.key_file))
    confirmed = agent.handler.handle(
        command(agent, "rotate", seq=2, confirm_kid=cose.kid_for(new.verify_key))
    )
    assert confirmed.result == "ok"
    (rotated,) = confirmed.effects
    assert isinstance(rotated, cmds.KeyRotated)
    assert agent.signer.key is old  # the handler swapped nothing
    agent.apply(rotated)
    assert bytes(agent.signer.key) == bytes(new)
    assert agent.enrollment is rotated.record
    (entry,) = agent.outbox.sent_after(0, 10)
    assert entry.envelope is not None
    assert cose.peek_kid(entry.envelope) == cose.kid_for(new.verify_key)


def test_a_wrong_confirmation_is_refused_without_effects(agent: Agent) -> None:
    agent.handler.handle(command(agent, "rotate", seq=1))
    outcome = agent.handler.handle(command(agent, "rotate", seq=2, confirm_kid=b"\x00" * 8))
    assert outcome == cmds.Outcome("refused: confirm_kid is not the pending key")


def test_build_agent__one_clock_reaches_the_runtime_and_the_link(tmp_path: Path) -> None:
    from agent.clock import Clock

    dev = provision(tmp_path, "clk-1", "phone", "mqtt://127.0.0.1:9", BRIDGE, interval_s=30)
    cfg = config.load(dev.config)
    clock = Clock(wall_ms=lambda: 1_700_000_000_000, mono_ms=lambda: 42)
    built = build_agent(cfg, keys.load(cfg.key_file), clock=clock)
    try:
        # One clock: the injected monotonic clock, and its wall clock through the time base
        # (agent.timebase: no floor persisted yet, no bridge time: the raw wall clock).
        assert built.link.clock is built.clock and built.clock.mono_ms is clock.mono_ms
        assert built.clock.wall_ms() == 1_700_000_000_000
    finally:
        built.outbox.close()


def test_stepup__the_simulated_owner_confirms_an_impostor_declines(agent: Agent) -> None:
    ask: dict[str, Any] = {"challenge": b"\x01" * 16, "event": "d:7", "expires_ms": 5}
    assert agent.cfg.source == "sim" and not agent.cfg.impostor
    owner = agent.handler.handle(command(agent, "stepup", **ask))
    assert owner.result == m.STEPUP_CONFIRMED
    assert len(owner.strokes) == cmds.CONFIRM_SWIPES  # the confirming swipes go with it
    assert all(len(s) == len(STROKE_FEATURES) for s in owner.strokes)
    agent.cfg = replace(agent.cfg, impostor=True)
    declined = agent.handler.handle(command(agent, "stepup", **ask))
    assert (declined.result, declined.strokes) == (m.STEPUP_DECLINED, ())
    # A thief who presses confirm: confirmed, with their own swipes, not the owner's.
    agent.cfg = replace(agent.cfg, impostor_confirms=True)
    thief = agent.handler.handle(command(agent, "stepup", **ask))
    assert thief.result == m.STEPUP_CONFIRMED and len(thief.strokes) == cmds.CONFIRM_SWIPES
    assert _feature(thief.strokes, "duration_ms") != _feature(owner.strokes, "duration_ms")
    # Without a simulated user there is no prompt: declined, no strokes.
    agent.cfg = replace(agent.cfg, source="replay", impostor=False)
    assert agent.handler.handle(command(agent, "stepup", **ask)).strokes == ()
    # A malformed step-up is an error answer, never a confirmation.
    bad = agent.handler.handle(command(agent, "stepup", event="d:7"))
    assert bad.result.startswith("error:") and bad.effects == ()


def test_stepup__the_answer_is_a_fresh_report_naming_the_command(agent: Agent) -> None:
    ask: dict[str, Any] = {"challenge": b"\x01" * 16, "event": "d:7", "expires_ms": 5}
    agent.commands.put(command(agent, "stepup", seq=41, **ask))
    agent._handle_commands()
    entries = agent.outbox.assign(10, agent.signer.sign)
    stored = [m.decode(cose.peek_payload(e.envelope)) for e in entries if e.envelope]
    answers = [r for r in stored if isinstance(r, m.Report) and r.cmd_seq == 41]
    assert len(answers) == 1 and answers[0].cmd_result == "confirmed"
    assert answers[0].fingerprint  # captured now: the bridge scores it before it counts
    assert len(answers[0].strokes) == cmds.CONFIRM_SWIPES  # and the swipes the bridge judges


def _feature(strokes: tuple[tuple[int, ...], ...], name: str) -> list[int]:
    return [s[STROKE_FEATURES.index(name)] for s in strokes]

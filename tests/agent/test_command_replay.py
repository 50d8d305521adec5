"""A command is applied once: a replayed envelope, an expired command and a retained command do
nothing (issue 18 item 4). Real agent process, real broker, the stand-in bridge signs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agent.commands import CONFIG_VERSION_KEY
from agent.outbox import Outbox
from protocol import envelope, topics
from protocol import messages as m
from tests.agent.standin import BridgeStandIn
from tests.agent.test_agent_e2e import make
from tests.harness.mosquitto import Mosquitto

pytestmark = pytest.mark.broker


def _answers(bridge: BridgeStandIn, device: str) -> dict[int, str]:
    """cmd_seq -> cmd_result of every answer the device sent."""
    out = {}
    for payload in bridge.got.data.get(device, {}).values():
        msg = m.decode(payload)
        if isinstance(msg, m.Report) and msg.cmd_seq:
            out[msg.cmd_seq] = msg.cmd_result
    return out


def test_replayed_expired_and_retained_commands_do_nothing(tmp_path: Path, broker: Mosquitto):
    dev, bridge = make(tmp_path, broker, interval_s=5)
    dev.start()
    try:
        assert bridge.wait_for(lambda g: bool(g.births), 20), dev.log()
        time.sleep(0.5)
        now_ms = time.time_ns() // 1_000_000
        version_arg = m.CONFIG_VERSION_ARG
        first = bridge.send_command(
            "rig-1", "config", {"report.interval_s": 7, version_arg: 1}, expires_ms=now_ms + 60_000
        )
        assert bridge.wait_for(lambda g: _answers(bridge, "rig-1").get(first) == "ok", 10)
        # The same signed bytes again (a replay), a command past its expiry, a retained one.
        topic = topics.command("test", "rig-1", "config")
        bridge.publish_raw(topic, bridge.sent[first])
        expired = bridge.send_command(
            "rig-1", "config", {"report.interval_s": 9, version_arg: 2}, expires_ms=now_ms - 1
        )
        # Delivered live, a retained command is applied once; what the broker keeps comes back
        # flagged retained at every subscribe (after a restart here) and is never applied again.
        retained = bridge.send_command(
            "rig-1", "config", {"report.interval_s": 11, version_arg: 3}, retain=True
        )
        ping = bridge.send_command("rig-1", "ping")
        assert bridge.wait_for(lambda g: ping in _answers(bridge, "rig-1"), 10), dev.log()
        dev.stop()
        dev.start()
        assert bridge.wait_for(lambda g: len(g.births) >= 2, 20), dev.log()
        ping2 = bridge.send_command("rig-1", "ping")
        assert bridge.wait_for(lambda g: ping2 in _answers(bridge, "rig-1"), 10), dev.log()
        bridge.publish_raw(topic, b"", retain=True)  # clear it from the broker
        time.sleep(0.5)
        answers = [
            m.decode(p).cmd_seq  # type: ignore[attr-defined]
            for p in bridge.got.data["rig-1"].values()
            if getattr(m.decode(p), "cmd_seq", 0)
        ]
        # Each applied command answered once; the replay and the expired one never.
        assert sorted(answers) == [first, retained, ping, ping2], answers
    finally:
        dev.stop()
        bridge.stop()
    log = dev.log()
    assert "command_replay" in log or "replayed command config" in log
    assert f"seq {expired} not applied: command_expired" in log
    assert f"retained command config seq {retained} ignored" in log
    box = Outbox.open(dev.dir / "outbox.sqlite3")
    try:
        assert box.get_json(CONFIG_VERSION_KEY) == 3
        assert box.get_json("config_overrides") == {"report.interval_s": 11}
    finally:
        box.close()


def test_a_stale_ack_does_not_trust_the_clock_and_held_commands_survive_a_restart(
    tmp_path: Path, broker: Mosquitto
) -> None:
    """An ack queued in the persistent session while the device was off (3 hours old) must not
    set its clock: a command that has just expired is held, not applied; the held command
    survives a restart and, once acks of this boot's messages trust the clock, is refused as
    expired. (Where NTP already synchronises the clock the command is refused at once, which
    these assertions also accept.)"""
    dev, bridge = make(tmp_path, broker, interval_s=1)
    bridge.ack_enabled = False  # nothing sets the clock but the stale ack below
    dev.start()
    try:
        assert bridge.wait_for(lambda g: len(g.data.get("rig-1", {})) >= 2, 20), dev.log()
        dev.stop()
        now_ms = time.time_ns() // 1_000_000
        sent = max(bridge.got.data["rig-1"])
        stale = m.Ack(
            sender="standin", seq=9_000, boot=bridge.boot, ts_ms=now_ms - 3 * 3_600_000,
            device="rig-1", ack_seq=sent,
        )  # fmt: skip
        bridge.publish_raw(
            topics.device("test", "rig-1", topics.Channel.ACK), envelope.seal(stale, bridge.key)
        )
        dev.start()  # the stale ack comes out of the session on this connect
        assert bridge.wait_for(lambda g: len(g.births) >= 2, 20), dev.log()
        time.sleep(1.0)
        # expired just now, after the time floor the first run persisted: a clock set back by
        # the stale ack reads that floor and would apply it
        expired = bridge.send_command("rig-1", "ping", expires_ms=now_ms - 500)
        time.sleep(2.0)
        assert expired not in _answers(bridge, "rig-1"), dev.log()  # held (or refused)
        dev.stop()  # the held command must outlive this
        bridge.ack_enabled = True
        dev.start()
        assert bridge.wait_for(lambda g: len(g.births) >= 3, 20), dev.log()
        ping = bridge.send_command("rig-1", "ping")
        assert bridge.wait_for(lambda g: ping in _answers(bridge, "rig-1"), 20), dev.log()
    finally:
        dev.stop()
        bridge.stop()
    assert expired not in _answers(bridge, "rig-1")
    assert f"seq {expired} not applied: command_expired" in dev.log()

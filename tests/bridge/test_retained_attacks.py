"""An outsider on an open broker against the retained topics (issue 12 item 2): a real bridge
process, a real agent and a private Mosquitto without ACLs, because this defence must not rest
on the broker. The outsider deletes or replaces the retained bridge state (empty, foreign
signature, the bridge's own earlier offline, its last will) and the retained pool state (an
older, validly signed copy, or nothing): devices keep draining, and a new subscriber finds the
current state again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nacl.signing
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from protocol import envelope
from protocol import messages as m
from protocol.errors import ProtocolError
from tests.agent.harness import Device, wait
from tests.bridge.harness import Bridge
from tests.bridge.test_end_to_end import FRIDGE_RULE
from tests.harness.mosquitto import Mosquitto
from tests.harness.outsider import Outsider, retained

pytestmark = [pytest.mark.broker, pytest.mark.slow]

STATE = "cp/v1/test/bridge/state"
POOL = "cp/v1/test/pool/u-1/state"
FOREIGN = nacl.signing.SigningKey(bytes(range(7, 39)))


@dataclass
class World:
    broker: Mosquitto
    bridge: Bridge
    device: Device
    outsider: Outsider

    def stored(self) -> int:
        rows = self.bridge.query("SELECT count(*) FROM events WHERE device_id = 'fridge-1'")
        return int(rows[0][0])

    def keeps_draining(self, more: int = 15, timeout_s: float = 20) -> bool:
        """The device's messages keep reaching the bridge's log."""
        start = self.stored()
        return wait(lambda: self.stored() >= start + more, timeout_s)

    def decoded(self, payload: bytes | None) -> m.Message | None:
        """The message, if `payload` is signed with the bridge key."""
        if not payload:
            return None
        key = self.bridge.key.verify_key
        try:
            return envelope.unseal(payload, lambda kid: key)[1]
        except ProtocolError:
            return None

    def retained_online(self) -> bool:
        """A new subscriber finds a valid "online" from the bridge on its state topic."""
        state = self.decoded(retained(self.broker, STATE))
        return isinstance(state, m.BridgeState) and state.online

    def pool_version(self) -> int:
        return int(self.bridge.query("SELECT version FROM pools WHERE user_id = 'u-1'")[0][0])

    def retained_pool_version(self) -> int | None:
        state = self.decoded(retained(self.broker, POOL))
        return state.version if isinstance(state, m.PoolState) else None

    def restart_device(self) -> None:
        self.device.stop()
        self.device.start("--offline-ok")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    broker = Mosquitto(tmp_path / "open-broker")  # no ACLs: the defence must not need them
    broker.start()
    bridge = Bridge.create(tmp_path / "bridge", broker.url)
    device = bridge.device(
        tmp_path, "fridge-1", "fridge", broker.url, "u-1", extra_toml=FRIDGE_RULE, interval_s=0.1
    )
    bridge.open_pool("u-1", 50_000_000)
    bridge.start()
    outsider = Outsider(broker)
    outsider.watch(STATE)
    outsider.watch(POOL)
    device.start("--offline-ok")
    w = World(broker, bridge, device, outsider)
    try:
        assert w.keeps_draining(10, 30), bridge.log()[-2000:] + device.log()[-2000:]
        yield w
    finally:
        outsider.close()
        if device.proc:
            device.stop()
        if bridge.proc:
            bridge.stop()
        broker.stop()


def foreign_offline() -> bytes:
    """A state that claims to be bridge-1's newest offline, signed with someone else's key."""
    state = m.BridgeState(sender="bridge-1", seq=10**9, boot=10**6, ts_ms=1, online=False)
    return envelope.seal(state, FOREIGN)


@pytest.mark.parametrize("payload", [b"", foreign_offline()], ids=["empty", "foreign"])
def test_an_empty_or_foreign_bridge_state_is_replaced_and_devices_drain(
    world: World, payload: bytes
) -> None:
    world.outsider.publish(STATE, payload)
    assert wait(world.retained_online, 10), world.bridge.log()[-2000:]
    assert world.keeps_draining()
    world.restart_device()  # a device that (re)connects now finds a valid state
    assert world.keeps_draining(), world.device.log()[-2000:]


def test_a_replayed_offline_of_an_earlier_run_is_answered(world: World) -> None:
    world.bridge.stop()  # a clean stop: the bridge says offline itself
    assert wait(lambda: any(not getattr(world.decoded(p), "online", True)
                            for p in world.outsider.messages(STATE)), 5)  # fmt: skip
    old_offline = [
        p for p in world.outsider.messages(STATE) if not getattr(world.decoded(p), "online", True)
    ][-1]
    world.bridge.start()
    assert wait(world.retained_online, 15)
    world.outsider.publish(STATE, old_offline)
    assert wait(world.retained_online, 10), world.bridge.log()[-2000:]
    world.restart_device()
    assert world.keeps_draining(), world.device.log()[-2000:]


def test_a_replayed_last_will_of_this_run_does_not_stop_running_devices(world: World) -> None:
    # Taking over the bridge's client id makes the broker publish the bridge's last will; the
    # bridge reconnects by itself a moment later. The outsider keeps the will and replays it.
    intruder = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id="bridge-1", protocol=MQTTProtocolVersion.MQTTv5
    )
    intruder.connect(world.broker.host, world.broker.port)
    intruder.loop_start()

    def wills() -> list[bytes]:
        return [
            p
            for p in world.outsider.messages(STATE)
            if isinstance(s := world.decoded(p), m.BridgeState) and not s.online
        ]

    try:
        assert wait(lambda: len(wills()) > 0, 10), world.bridge.log()[-2000:]
    finally:
        intruder.disconnect()
        intruder.loop_stop()
    will = wills()[-1]
    assert wait(world.retained_online, 20), world.bridge.log()[-2000:]  # the bridge is back
    assert world.keeps_draining(10, 30)
    world.outsider.publish(STATE, will)
    time.sleep(0.5)
    assert world.keeps_draining(), world.device.log()[-2000:]
    assert wait(lambda: world.device.status()["drain"] == "online", 10)
    assert wait(world.retained_online, 10)


def test_a_replayed_older_pool_state_is_replaced(world: World) -> None:
    assert wait(lambda: (world.retained_pool_version() or 0) > 1, 20)
    old = retained(world.broker, POOL)
    assert old is not None
    old_version = world.retained_pool_version()
    assert old_version is not None
    assert wait(lambda: world.pool_version() > old_version, 20)  # the pool moves on
    world.device.stop()  # no more changes: only the guard can put the current state back
    time.sleep(1)
    current = world.pool_version()
    assert wait(lambda: world.retained_pool_version() == current, 5)
    world.outsider.publish(POOL, old)
    assert wait(lambda: world.retained_pool_version() == current, 10), world.bridge.log()[-2000:]


def test_an_empty_or_foreign_pool_state_is_replaced(world: World) -> None:
    assert wait(lambda: world.retained_pool_version() is not None, 20)
    world.device.stop()
    time.sleep(1)
    current = world.pool_version()
    for payload in (b"", envelope.seal(forged_pool_state(current + 100), FOREIGN)):
        world.outsider.publish(POOL, payload)
        assert wait(lambda: world.retained_pool_version() == current, 10), payload[:16]


def forged_pool_state(version: int) -> m.PoolState:
    """A pool state that claims a newer version and a richer pool, signed by an outsider."""
    return m.PoolState(
        sender="bridge-1", seq=10**9, boot=10**6, ts_ms=1, user="u-1", status="open",
        limit_fen=10**12, available_fen=10**12, outstanding_fen=0, held_fen=0, rate_bps=0,
        version=version,
    )  # fmt: skip


def test_the_bridge_s_genuine_last_will_still_gates_devices(world: World) -> None:
    """Its will is numbered after its announcement, so ordering by (boot, seq) keeps it
    effective: a dead bridge is not sent to until it says online again (or the state timeout)."""
    assert wait(lambda: world.device.status()["drain"] == "online", 20)  # status.json: 1/s
    world.bridge.kill()  # the broker publishes the will
    assert wait(lambda: world.device.status()["drain"] == "gated", 20), world.device.log()[-2000:]
    world.bridge.start()
    assert wait(lambda: world.device.status()["drain"] == "online", 20)
    assert world.keeps_draining()

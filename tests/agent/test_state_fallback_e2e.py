"""The agent as a real process when no valid bridge state can be had (issue 12 item 2): an
outsider on an open broker has left an empty or a foreign-signed retained state and the bridge
stand-in does not put its own back. The agent must not drain before its configured
bridge_state_timeout_s, then drains paced by the stand-in's signed acks, and says so in its
status."""

from __future__ import annotations

import time
from pathlib import Path

import nacl.signing
import pytest

from protocol import envelope, topics
from protocol import messages as m
from tests.agent.harness import provision, wait
from tests.agent.standin import BRIDGE_SEED, BridgeStandIn
from tests.harness.mosquitto import Mosquitto
from tests.harness.outsider import Outsider

pytestmark = pytest.mark.broker

TIMEOUT_S = 3


def foreign_online() -> bytes:
    """A state saying online, signed by someone who is not the bridge."""
    state = m.BridgeState(sender="standin", seq=10**9, boot=10**6, ts_ms=1, online=True)
    return envelope.seal(state, nacl.signing.SigningKey(bytes(range(40, 72))))


@pytest.mark.parametrize("payload", [b"", foreign_online()], ids=["empty", "foreign"])
def test_without_a_valid_bridge_state_the_agent_drains_on_acks(
    tmp_path: Path, payload: bytes
) -> None:
    broker = Mosquitto(tmp_path / "open-broker")  # no ACLs: the defence must not need them
    broker.start()
    bridge_hex = bytes(nacl.signing.SigningKey(BRIDGE_SEED).verify_key).hex()
    dev = provision(tmp_path, "rig-1", "phone", broker.url, bridge_hex, interval_s=0.1)
    text = dev.config.read_text()
    assert "[mqtt]\n" in text
    dev.config.write_text(
        text.replace("[mqtt]\n", f"[mqtt]\nbridge_state_timeout_s = {TIMEOUT_S}\n")
    )
    bridge = BridgeStandIn(broker.host, broker.port, "test", {"rig-1": dev.verify_key}).start()
    outsider = Outsider(broker)
    try:
        time.sleep(0.5)  # the stand-in's own state is out; the outsider's replaces it
        outsider.publish(topics.bridge_state("test"), payload)
        dev.start()
        started = time.monotonic()
        assert wait(lambda: dev.status()["link"] == "connected", 20), dev.log()[-2000:]
        time.sleep(1)
        with bridge.lock:
            assert bridge.got.data.get("rig-1", {}) == {}  # gated: no valid state yet
        got = lambda g: len(g.data.get("rig-1", {})) >= 20  # noqa: E731
        assert bridge.wait_for(got, 30), dev.log()[-2000:]
        assert time.monotonic() - started >= TIMEOUT_S - 0.5  # not before the timeout
        assert wait(lambda: dev.status()["drain"] == "on_acks", 5), dev.status()  # written 1/s
        assert dev.status()["bridge_online"] is False
        assert "draining while the bridge's acks come" in dev.log()
    finally:
        outsider.close()
        if dev.proc:
            dev.stop()
        bridge.stop()
        broker.stop()

"""A hung link (issue 18 item 3): a broker connection that accepts TCP but never answers is
detected and recovered within two keepalives, by a real agent process through a relay to a
real Mosquitto. The hang happens twice: on an established session (the MQTT keepalive's
PINGREQ goes unanswered) and on a fresh connection (no CONNACK ever comes)."""

from __future__ import annotations

from pathlib import Path

import nacl.signing
import pytest

from tests.agent.harness import provision, wait
from tests.agent.standin import BRIDGE_SEED
from tests.agent.test_agent_e2e import standin_for
from tests.harness.hung import HungRelay
from tests.harness.mosquitto import Mosquitto

pytestmark = pytest.mark.broker

KEEPALIVE_S = 5  # the smallest agent.toml accepts
MARGIN_S = 1.0  # the link loop's and the relay's polling granularity, generously


def test_a_hung_broker_is_detected_within_two_keepalives_and_left(
    tmp_path: Path, broker: Mosquitto
) -> None:
    relay = HungRelay(broker.port, broker.host)
    bridge_hex = bytes(nacl.signing.SigningKey(BRIDGE_SEED).verify_key).hex()
    dev = provision(tmp_path, "hung-1", "phone", relay.url, bridge_hex, interval_s=0.5)
    text = dev.config.read_text()
    assert "[mqtt]\n" in text
    dev.config.write_text(text.replace("[mqtt]\n", f"[mqtt]\nkeepalive_s = {KEEPALIVE_S}\n"))
    bridge = standin_for(broker, dev)
    count = lambda: len(bridge.got.data.get("hung-1", {}))  # noqa: E731
    try:
        dev.start()
        assert wait(lambda: count() >= 3, 30), dev.log()[-2000:]
        # 1. the established session hangs, and so does every new connection for a while
        relay.hang_new = True
        hung_at = relay.hang()
        assert wait(lambda: len(relay.closed_at) >= 1, 4 * KEEPALIVE_S), dev.log()[-2000:]
        session_s = relay.closed_at[0] - hung_at
        # 2. the next connection is accepted and never answered: no CONNACK
        assert wait(lambda: len(relay.closed_at) >= 2, 6 * KEEPALIVE_S), dev.log()[-2000:]
        opened = [t for t in relay.accepted if t > hung_at]
        assert opened, relay.accepted
        connect_s = relay.closed_at[1] - opened[0]
        print(f"hung session detected after {session_s:.2f} s, hung connect {connect_s:.2f} s "
              f"(keepalive {KEEPALIVE_S} s)")  # fmt: skip
        assert session_s <= 2 * KEEPALIVE_S + MARGIN_S
        assert connect_s <= 2 * KEEPALIVE_S + MARGIN_S
        assert "no CONNACK" in dev.log()
        # 3. the broker answers again: the agent reconnects by itself and delivers
        relay.hang_new = False
        before = count()
        assert wait(lambda: count() >= before + 3, 60), dev.log()[-2000:]
    finally:
        if dev.proc:
            dev.stop()
        bridge.stop()
        relay.close()

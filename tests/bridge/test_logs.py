"""What the real bridge and agent processes write to their logs: a clean stop reads as one,
and a flood of refused messages costs one warning per reason, not one per message."""

from __future__ import annotations

import re
from pathlib import Path

import nacl.signing
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from protocol import cose, envelope, topics
from protocol import messages as m
from protocol.topics import Channel
from tests.agent.harness import Device, wait
from tests.bridge.harness import Bridge
from tests.harness.mosquitto import Mosquitto

pytestmark = pytest.mark.broker

# Each test has a broker of its own: nothing retained by another test's bridge reaches these.
NOT_CLEAN = re.compile(r" (WARNING|ERROR|CRITICAL) |reconnect|Traceback")


def _events(bridge: Bridge) -> int:
    return int(str(bridge.query("SELECT count(*) FROM events")[0][0]))


def test_a_clean_sigterm_logs_no_reconnect_warning(
    tmp_path: Path, private_broker: Mosquitto
) -> None:
    bridge = Bridge.create(tmp_path / "bridge", private_broker.url)
    dev: Device = bridge.device(tmp_path, "rig-1", "phone", private_broker.url, "u-1")
    for first in ("agent", "bridge"):  # either may be stopped first
        bridge.start()
        dev.start()
        try:
            target = _events(bridge) + 3
            assert wait(lambda t=target: _events(bridge) >= t, 20), bridge.log() + dev.log()  # type: ignore[misc]
        finally:
            stops = [dev.stop, bridge.stop] if first == "agent" else [bridge.stop, dev.stop]
            assert [stop() for stop in stops] == [0, 0]
    for log in (bridge.log(), dev.log()):
        assert not [line for line in log.splitlines() if NOT_CLEAN.search(line)], log
    assert bridge.log().count("bridge bridge-1: stopped; said offline and disconnected") == 2
    assert dev.log().count("link: session 1 closed (shutdown)") == 1
    assert dev.log().count("link: session 2 closed (shutdown)") == 1


def test_warnings_about_refused_rotations_are_throttled(
    tmp_path: Path, private_broker: Mosquitto
) -> None:
    bridge = Bridge.create(tmp_path / "bridge", private_broker.url)
    dev = bridge.device(tmp_path, "rig-1", "phone", private_broker.url, "u-1")
    key = nacl.signing.SigningKey(bytes.fromhex((dev.dir / "device.key").read_text()))
    new_key = nacl.signing.SigningKey(bytes(range(32)))
    # Signed by the device's own key, but naming another key as the one it replaces: refused.
    record = m.Enrollment(
        sender="rig-1", seq=2, boot=1, ts_ms=1, fleet="test", device_kind="phone",
        public_key=bytes(new_key.verify_key), prev_kid=cose.kid_for(new_key.verify_key),
    )  # fmt: skip
    sealed = envelope.seal(record, key)
    bridge.start()
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.username_pw_set(*dev.login)  # a compromised device: its key and its broker password
    client.connect(private_broker.host, private_broker.port)
    client.loop_start()
    try:
        assert wait(lambda: "serving fleet test" in bridge.log(), 20)
        for _ in range(40):
            client.publish(topics.device("test", "rig-1", Channel.ENROLL), sealed, 1)

        def refused() -> int:
            return len(bridge.query("SELECT reason FROM rejections WHERE reason = 'bad_field'"))

        assert wait(lambda: refused() == 40, 20), (refused(), bridge.log())
    finally:
        client.loop_stop()
        client.disconnect()
        bridge.stop()
    # every refusal recorded; one warning (the interval is a minute)
    assert bridge.log().count("rotation from rig-1 refused") == 1, bridge.log()

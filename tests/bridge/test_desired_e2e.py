"""A device offline while its desired configuration changed converges within one reconnect;
an online one at once (issue 18 item 4). Real agent, real bridge process, private Mosquitto."""

from __future__ import annotations

import json
import socket
import urllib.request
from pathlib import Path

import pytest

from agent.commands import CONFIG_VERSION_KEY
from agent.outbox import Outbox
from tests.agent.harness import wait
from tests.bridge.harness import Bridge, bridge_cli
from tests.harness.mosquitto import Mosquitto

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _drift(port: int) -> float | None:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
    except OSError:
        return None
    for line in text.decode().splitlines():
        if line.startswith("cp_bridge_config_drift "):
            return float(line.split()[1])
    return None


def test_offline_device_converges_within_one_reconnect(
    tmp_path: Path, private_broker: Mosquitto
) -> None:
    url = private_broker.url
    port = _free_port()
    bridge = Bridge.create(tmp_path / "bridge", url, extra=f"\n[metrics]\nport = {port}\n")
    dev = bridge.device(tmp_path, "phone-1", "phone", url, "u-1", interval_s=1)
    where = ("--data", str(bridge.data), "--config", str(bridge.config))

    def config(*args: str) -> dict[str, object]:
        out = bridge_cli("devices", "config", *args, "--json", *where)
        return dict(json.loads(out.stdout))

    def stored() -> int:
        rows = bridge.query("SELECT count(*) FROM events WHERE device_id = ?", ("phone-1",))
        return int(rows[0][0])  # type: ignore[call-overload]

    bridge.start()
    dev.start("--offline-ok")
    try:
        assert wait(lambda: stored() > 0, 30), dev.log()[-2000:]
        # Online: the command goes out at once; the device's "ok" confirms the version.
        assert config("set", "phone-1", "report.interval_s=7")["desired_version"] == 1
        assert wait(lambda: config("show", "phone-1")["reported_version"] == 1, 20), bridge.log()
        dev.stop()
        # Offline: two versions later, the device is two behind.
        config("set", "phone-1", "report.interval_s=3")
        shown = config("set", "phone-1", "outbox.max_messages=5000")
        assert shown["desired_version"] == 3 and shown["drifted"] is True
        assert wait(lambda: _drift(port) == 1.0, 15), "drift gauge never showed the lag"
        dev.start("--offline-ok")
        assert wait(lambda: config("show", "phone-1")["reported_version"] == 3, 30), dev.log()[
            -3000:
        ]
        # Converged in the first session after the restart: one connect before, one after.
        assert dev.log().count("link: connected (session") == 2, dev.log()[-3000:]
        assert wait(lambda: _drift(port) == 0.0, 15)
    finally:
        if dev.proc:
            dev.stop()
        bridge.stop()
    box = Outbox.open(dev.dir / "outbox.sqlite3")
    try:
        assert box.get_json(CONFIG_VERSION_KEY) == 3
        assert box.get_json("config_overrides") == {
            "report.interval_s": 3,
            "outbox.max_messages": 5000,
        }
    finally:
        box.close()

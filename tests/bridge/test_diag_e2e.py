"""Remote diagnostics (issue 18 item 5): `cloud-bridge devices diag` against a real agent over a
real broker; the last crash survives a restart (SIGKILL found at the next start); an offline
device is a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.agent.harness import wait
from tests.bridge.harness import Bridge, bridge_cli
from tests.harness.mosquitto import Mosquitto

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def test_diag_answers_with_log_crash_and_figures(tmp_path: Path, private_broker: Mosquitto) -> None:
    url = private_broker.url
    bridge = Bridge.create(tmp_path / "bridge", url)
    dev = bridge.device(tmp_path, "phone-1", "phone", url, "u-1", interval_s=1)
    where = ("--data", str(bridge.data), "--config", str(bridge.config))

    def diag(*extra: str, check: bool = True):  # type: ignore[no-untyped-def]
        return bridge_cli("devices", "diag", "phone-1", *extra, *where, check=check)

    def stored() -> int:
        rows = bridge.query("SELECT count(*) FROM events WHERE device_id = ?", ("phone-1",))
        return int(rows[0][0])  # type: ignore[call-overload]

    bridge.start()
    dev.start("--offline-ok")
    try:
        assert wait(lambda: stored() > 0, 30), dev.log()[-2000:]
        got = json.loads(diag("--lines", "5", "--json").stdout)
        assert got["device"] == "phone-1" and got["crash"] == ""
        assert 1 <= len(got["log"]) <= 5
        assert got["figures"]["rss_max_kb"] > 0 and "outbox_backlog" in got["figures"]
        dev.kill()  # SIGKILL: found as an unclean end at the next start
        dev.start("--offline-ok")
        # Up again: its start logs the unclean end, then the agent's own start line.
        assert wait(lambda: "agent phone-1 (phone) boot" in dev.log().split("uncleanly")[-1], 30)
        again = json.loads(diag("--lines", "200", "--json").stdout)
        assert again["crash"].startswith("unclean_exit") and again["crash_ms"] > 0
        assert again["uptime_s"] < got["uptime_s"] + 60
        text = diag("--lines", "3").stdout
        assert "last crash: unclean_exit" in text and "figures: " in text
        dev.stop()
        offline = diag("--timeout", "2", check=False)
        assert offline.returncode == 1
        assert "no diagnostics from phone-1 within 2 s: the device is offline" in offline.stderr
    finally:
        if dev.proc:
            dev.stop()
        bridge.stop()

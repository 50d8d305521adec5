"""SIGKILL of the whole device (launcher and agent at once, a power cut) in the middle of a
self-update, with real processes, a real bridge and a real private Mosquitto: killed while
downloading, and while the new release is on trial before its commit. Started again, the device
commits the new release, and every message it stored reached the bridge without a gap."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.agent.harness import ROOT, wait
from tests.agent.update_releases import build
from tests.bridge.harness import Bridge, bridge_cli
from tests.harness.artefacts import ArtefactServer
from tests.harness.mosquitto import Mosquitto
from tools.procs import die_with_parent

pytestmark = pytest.mark.broker


def phase(dev_dir: Path) -> str:
    try:
        return str(json.loads((dev_dir / "update.json").read_text())["phase"])
    except (OSError, ValueError, KeyError):
        return ""


def launch(dev_dir: Path, config: Path) -> subprocess.Popen[bytes]:
    log = open(dev_dir / "launch.log", "ab")  # noqa: SIM115 - owned by the process
    return subprocess.Popen(
        [sys.executable, "-m", "agent.update.launch", "--state-dir", str(dev_dir), "--",
         "run", "--config", str(config.resolve()), "--offline-ok"],
        cwd=ROOT, stdout=log, stderr=log, preexec_fn=die_with_parent, start_new_session=True,
    )  # fmt: skip


@pytest.mark.parametrize("kill_in", ["downloading", "trial"])
def test_a_power_cut_mid_update_ends_committed_with_nothing_lost(
    tmp_path: Path, private_broker: Mosquitto, kill_in: str
) -> None:
    www = tmp_path / "www"
    www.mkdir()
    build(www, "0.2.0")
    server = ArtefactServer(www)
    if kill_in == "downloading":
        server.cut_after = 70_000  # the first response drops: a retry 2 s later resumes it
    bridge = Bridge.create(tmp_path / "bridge", private_broker.url)
    dev = bridge.device(tmp_path, "kill-1", "phone", private_broker.url, "u-1", interval_s=0.2)
    bridge.start()
    proc = launch(dev.dir, dev.config)
    journal = lambda: (dev.dir / "launch.log").read_text(errors="replace")[-3000:]  # noqa: E731
    count = lambda: len(bridge.query("SELECT seq FROM events WHERE device_id = 'kill-1'"))  # noqa: E731
    try:
        assert wait(lambda: count() >= 3, 30), journal()
        bridge_cli("devices", "update", "kill-1", "--version", "0.2.0",
                   "--url", server.url("0.2.0.tar.gz"), "--file", str(www / "0.2.0.tar.gz"),
                   "--data", str(bridge.data), "--config", str(bridge.config))  # fmt: skip
        assert wait(lambda: phase(dev.dir) == kill_in, 30, step_s=0.02), journal()
        os.killpg(proc.pid, signal.SIGKILL)  # launcher and agent at once
        proc.wait()
        proc = launch(dev.dir, dev.config)
        assert wait(lambda: phase(dev.dir) == "committed", 60), journal()
        assert (dev.dir / "current").resolve() == dev.dir / "releases" / "0.2.0"
        before = count()
        assert wait(lambda: count() > before + 3, 30), journal()
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        bridge.stop()
        server.close()
    seqs = sorted(int(str(s)) for (s,) in bridge.query(
        "SELECT seq FROM events WHERE device_id = 'kill-1'"))  # fmt: skip
    assert seqs == list(range(1, len(seqs) + 1)), seqs[:10]

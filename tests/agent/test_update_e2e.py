"""Self-update end to end (issue 18 item 1): real processes (the launcher, the agent releases,
the bridge), a real private Mosquitto with its ACLs, releases served over HTTP.

One device runs under `python -m agent.update.launch` from the base install (0.1.0). A good
release (0.2.0) goes live and is committed once the bridge acked a report of it; a release that
crashes on start (0.3.0) is rolled back after [update] max_starts starts; one that starts but
never gets an ack (0.4.0: its link dials a port nobody listens on) is rolled back at the trial
deadline; a manifest below the committed floor is refused. Every message the device stored
reaches the bridge: its sequence numbers have no gap."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.update.machine import TRIAL_TIME_UP
from protocol import cose
from protocol import messages as m
from tests.agent.harness import ROOT, wait
from tests.agent.update_releases import build
from tests.bridge.harness import Bridge, bridge_cli
from tests.harness.artefacts import ArtefactServer
from tests.harness.mosquitto import Mosquitto
from tools.procs import die_with_parent

pytestmark = pytest.mark.broker

TRIAL_S = 12
UPDATE_TOML = f"\n[update]\nmax_starts = 2\ntrial_s = {TRIAL_S}\n"


def state(dev_dir: Path) -> dict[str, object]:
    path = dev_dir / "update.json"
    return dict(json.loads(path.read_text())) if path.exists() else {}


def births(bridge: Bridge, device: str) -> list[str]:
    rows = bridge.query(
        "SELECT envelope FROM session_events WHERE device_id = ? AND kind = ? ORDER BY seq",
        (device, int(m.Kind.BIRTH)),
    )
    out = []
    for (env,) in rows:
        birth = m.decode(cose.peek_payload(bytes(env)))  # type: ignore[arg-type]
        assert isinstance(birth, m.Birth)
        out.append(birth.agent_version)
    return out


def test_good_bad_and_silent_releases(tmp_path: Path, private_broker: Mosquitto) -> None:
    www = tmp_path / "www"
    www.mkdir()
    build(www, "0.2.0")
    build(www, "0.3.0", "crash")
    build(www, "0.4.0", "silent")
    build(www, "0.1.9")
    server = ArtefactServer(www)
    bridge = Bridge.create(tmp_path / "bridge", private_broker.url)
    dev = bridge.device(
        tmp_path, "upd-1", "phone", private_broker.url, "u-1", interval_s=0.3,
        extra_toml=UPDATE_TOML,
    )  # fmt: skip
    bridge.start()  # before the device: it hears the first birth
    log = open(dev.dir / "launch.log", "ab")  # noqa: SIM115 - owned by the process
    launcher = subprocess.Popen(
        [sys.executable, "-m", "agent.update.launch", "--state-dir", str(dev.dir), "--",
         "run", "--config", str(dev.config.resolve()), "--offline-ok"],
        cwd=ROOT, stdout=log, stderr=log, preexec_fn=die_with_parent,
    )  # fmt: skip
    cli = ["--data", str(bridge.data), "--config", str(bridge.config)]
    journal = lambda: (dev.dir / "launch.log").read_text(errors="replace")[-4000:]  # noqa: E731

    def update(version: str, min_version: str = "0") -> None:
        bridge_cli("devices", "update", "upd-1", "--version", version,
                   "--url", server.url(f"{version}.tar.gz"), "--file",
                   str(www / f"{version}.tar.gz"), "--min-version", min_version, *cli)  # fmt: skip

    try:
        assert wait(lambda: births(bridge, "upd-1") == ["0.1.0"], 30), journal()
        # 1. a good release goes live and is committed after its report was acked
        update("0.2.0", min_version="0.2.0")
        assert wait(lambda: state(dev.dir).get("phase") == "committed", 60), journal()
        assert state(dev.dir)["running"] == "0.2.0" and state(dev.dir)["floor"] == "0.2.0"
        assert (dev.dir / "current").resolve() == (dev.dir / "releases" / "0.2.0")
        assert births(bridge, "upd-1")[-1] == "0.2.0"
        # 2. one that crashes on start is rolled back after max_starts starts
        update("0.3.0")
        assert wait(lambda: state(dev.dir).get("phase") == "rolled_back", 60), journal()
        assert state(dev.dir)["reason"] == "2 failed starts"
        assert wait(lambda: births(bridge, "upd-1")[-1] == "0.2.0" and
                    len(births(bridge, "upd-1")) >= 3, 30), journal()  # fmt: skip
        # 3. one that never gets an ack is rolled back at the deadline
        update("0.4.0")
        assert wait(lambda: state(dev.dir).get("target") == "0.4.0", 30), journal()
        assert wait(lambda: state(dev.dir).get("phase") == "rolled_back", TRIAL_S + 40), journal()
        assert state(dev.dir)["reason"] == TRIAL_TIME_UP
        assert state(dev.dir)["running"] == "0.2.0"
        good = dev.dir / "releases" / "0.2.0"
        assert wait(lambda: (dev.dir / "current").resolve() == good, 30), journal()
        # 4. below the committed floor: refused, nothing downloaded
        asked = len(server.requests)
        update("0.1.9")
        full = lambda: (dev.dir / "launch.log").read_text(errors="replace")  # noqa: E731
        assert wait(lambda: "refused: downgrade" in full(), 30), journal()
        assert len(server.requests) == asked
        # nothing lost: every stored message of every version reached the bridge
        before = len(bridge.query("SELECT seq FROM events WHERE device_id = 'upd-1'"))
        assert wait(lambda: len(bridge.query(
            "SELECT seq FROM events WHERE device_id = 'upd-1'")) > before + 3, 30)  # fmt: skip
    finally:
        launcher.terminate()
        try:
            code = launcher.wait(30)
        except subprocess.TimeoutExpired:
            launcher.kill()
            code = launcher.wait()
        bridge.stop()
        server.close()
    seqs = sorted(int(s) for (s,) in bridge.query(  # type: ignore[call-overload]
        "SELECT seq FROM events WHERE device_id = 'upd-1'"))  # fmt: skip
    assert seqs == list(range(1, len(seqs) + 1)), seqs[:5]
    assert code == 0, journal()

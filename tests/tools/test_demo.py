"""The demo end to end, as a user runs it: real broker, bridge, agents, TFLite and crypto.

Each run is short (40 s of fleet time, 8 devices in two households) but plays every scripted
moment; the demo's own exit status and summary.json say whether each happened and whether
anything was lost. Needs the project's `demo` extra (rich, matplotlib, amqtt).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.demo.moments import ORDER

pytestmark = [pytest.mark.broker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def demo_argv(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "tools.demo", "--duration", "40", "--devices", "8",
            "--no-live", "--out", str(out), *extra]  # fmt: skip


def run_demo(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        demo_argv(out, *extra), cwd=ROOT, capture_output=True, text=True, timeout=170
    )


def processes_using(path: Path) -> list[str]:
    """Command lines of live processes that mention `path` (the demo's children would)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(path) in cmd:
            found.append(f"{pid}: {cmd}")
    return found


def check_outcome(out: Path, proc: subprocess.CompletedProcess[str], broker: str) -> None:
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["passed"] is True, summary["reasons"]
    states = {m["key"]: m["state"] for m in summary["moments"]}
    assert states == {key: "done" for key in ORDER}, summary["moments"]
    assert all(m["took_s"] is not None and m["took_s"] >= 0 for m in summary["moments"])
    # The emergency shows its payout instruction's latency against the tier's budget (item 6).
    emergency = next(m for m in summary["moments"] if m["key"] == "emergency")
    assert "payout signed in" in emergency["detail"], emergency
    assert "the illness budget of 15000 ms" in emergency["detail"], emergency
    assert summary["zero_loss"] is True and summary["events_stored"] > 100
    assert summary["broker"].startswith(broker)
    assert summary["latency_ms"]["n"] == summary["decisions"] > 0
    # The summary on the terminal marks every moment done.
    text = proc.stdout[proc.stdout.index("demo summary:") :]
    moments = text.split("moments\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert len(moments) == len(ORDER) and all(line.strip().startswith("✓") for line in moments)
    assert "result   PASS" in text
    chart = out / "demo.png"
    assert chart.read_bytes()[:8] == PNG_MAGIC and chart.stat().st_size > 20_000
    assert str(chart) in text
    assert "python -m tools.tap --url mqtt://127.0.0.1:" in text
    # Every child (broker, bridge, agents, the clone) is gone.
    assert processes_using(out) == []


def test_the_demo_plays_every_moment_on_mosquitto_and_tap_decodes_it_live(tmp_path: Path):
    out = tmp_path / "demo"
    argv = demo_argv(out, "--broker", "mosquitto")
    demo = subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert demo.stdout is not None
    lines = []
    for line in demo.stdout:  # the demo says how to watch it while it runs
        lines.append(line)
        if "watch the same broker live with:" in line:
            break
    tap_cmd = lines[-1].split("live with:", 1)[1].split()
    assert tap_cmd[:3] == ["python", "-m", "tools.tap"]
    tap = subprocess.run(
        [sys.executable, *tap_cmd[1:], "--json", "--count", "60"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    rest, err = demo.communicate(timeout=170)
    proc = subprocess.CompletedProcess(argv, demo.returncode, "".join(lines) + rest, err)
    check_outcome(out, proc, "mosquitto (MQTT 5)")
    seen = [json.loads(line) for line in tap.stdout.splitlines()]
    assert tap.returncode == 0 and len(seen) == 60, tap.stderr
    assert all(x["verified"] for x in seen), [x for x in seen if not x["verified"]][:3]
    assert {"Report", "Decision", "Ack"} <= {x["kind"] for x in seen}


def test_the_demo_plays_every_moment_on_the_embedded_broker(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    check_outcome(out, run_demo(out, "--broker", "embedded"), "embedded (MQTT 3.1.1)")
    # The embedded broker's own log is kept, and the agents spoke MQTT 3.1.1 to it.
    assert (out / "broker" / "embedded.log").exists()
    assert 'protocol = "3.1.1"' in (out / "devices" / "h01-phone" / "agent.toml").read_text()


def test_bad_usage_is_refused_before_anything_starts(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tools.demo", "--devices", "2", "--out", str(tmp_path / "x")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--devices must be at least 4" in proc.stderr
    assert not (tmp_path / "x").exists()

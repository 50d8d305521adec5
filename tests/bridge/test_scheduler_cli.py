"""`cloud-bridge scheduler` as an operator runs it: the examples of its --help run as written
(the looping one until SIGTERM, its clean stop), and bad options are one line with exit 2."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.bridge.harness import ROOT
from tools.procs import die_with_parent


def cloud_bridge(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "cloud_bridge.cli", *args],
        cwd=cwd, capture_output=True, text=True, env=env, check=False, timeout=120,
    )  # fmt: skip


def test_every_example_in_the_help_runs(tmp_path: Path) -> None:
    shown = cloud_bridge("scheduler", "--help", cwd=tmp_path)
    assert shown.returncode == 0 and "exactly once" in shown.stdout
    lines = [line.split("  #")[0] for line in shown.stdout.split("examples:\n", 1)[1].splitlines()]
    examples = [shlex.split(line)[1:] for line in lines if line.strip()]
    assert len(examples) == 2 and all(argv[0] == "scheduler" for argv in examples)
    assert (
        cloud_bridge("init", "--data", "var/bridge", "--fleet", "demo", cwd=tmp_path).returncode
        == 0
    )
    opened = cloud_bridge(
        "pool", "open", "--user", "alice", "--limit", "5000000", "--data", "var/bridge",
        cwd=tmp_path,
    )  # fmt: skip
    assert opened.returncode == 0, opened.stderr
    for argv in examples:
        if "--once" in argv:
            done = cloud_bridge(*argv, cwd=tmp_path)
            assert done.returncode == 0, done.stderr
            assert done.stdout.split() == [
                "claimed",
                "0",
                "changed",
                "0",
                "events",
                "0",
                "outputs",
                "0",
            ]
            continue
        proc = subprocess.Popen(
            [sys.executable, "-m", "cloud_bridge.cli", *argv],
            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=die_with_parent,
        )  # fmt: skip
        time.sleep(2)
        assert proc.poll() is None, proc.communicate()  # still running its rounds
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def test_bad_options_are_one_line_with_exit_2(tmp_path: Path) -> None:
    done = cloud_bridge(
        "scheduler", "--data", str(tmp_path), "--batch", "0", "--once", cwd=tmp_path
    )
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "--batch" in done.stderr

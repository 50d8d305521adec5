"""Acceptance of the bench itself: a deliberately broken build must fail the outage, partition
and power-cut scenarios.

The broken build is the product with one fault switched on by the bench's own wrapper
(hil_tests/rigs/agent_main.py, ``HIL_BROKEN_BUILD=delete-before-ack``): its outbox deletes
every message as soon as it is numbered for sending, before the bridge's ack. This test runs
those scenarios on it in a pytest of their own and requires every one of them to fail; with
the real build (the rest of this run) they pass.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hil_tests.profile import Profile
from hil_tests.report import Figure
from hil_tests.rigs.agent_main import BROKEN_ENV, DELETE_BEFORE_ACK

ROOT = Path(__file__).resolve().parents[1]
MUST_FAIL = ("outage", "partition", "power_cut")


def test_broken_build_fails_outage_partition_and_power_cut(
    tmp_path: Path, profile: Profile, record: Figure
) -> None:
    if os.environ.get(BROKEN_ENV):  # this run is itself on the broken build: no recursion
        pytest.fail(f"run the bench without {BROKEN_ENV} set; this test sets it for its own run")
    junit = tmp_path / "junit.xml"
    argv = [
        sys.executable, "-m", "pytest", "hil_tests", "-p", "no:cacheprovider", "-q",
        "--rig", "virtual-agent", "-k", f"({' or '.join(MUST_FAIL)}) and not broken_build",
        "--junitxml", str(junit), "--hil-report", str(tmp_path / "report"),
        "--basetemp", str(tmp_path / "inner"),
        "--outage-seconds", str(profile.outage_s), "--cut-seconds", str(profile.cut_s),
        "--impair-seconds", str(profile.impair_s),
    ] + (["--ci"] if profile.name == "ci" else [])  # fmt: skip
    env = {**os.environ, BROKEN_ENV: DELETE_BEFORE_ACK}
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    assert junit.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    outcomes: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        failed = case.find("failure") is not None or case.find("error") is not None
        skipped = case.find("skipped") is not None
        outcomes[case.get("name", "?")] = "failed" if failed else "skipped" if skipped else "passed"
    record.summary = f"broken build ({DELETE_BEFORE_ACK}): " + ", ".join(
        f"{name} {outcome}" for name, outcome in sorted(outcomes.items())
    )
    for scenario in MUST_FAIL:
        ran = {n: o for n, o in outcomes.items() if n.startswith(f"test_{scenario}")}
        assert ran, f"no {scenario} scenario ran:\n{proc.stdout[-3000:]}"
        assert all(o == "failed" for o in ran.values()), (
            f"the broken build passed {scenario}: {ran}"
        )

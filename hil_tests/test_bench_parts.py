"""The bench's own parts: namespaces cleaned up (also after a killed run), the relay's
impairment, the zero-loss arithmetic and the report. Scenario-free and quick."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from hil_tests import report
from hil_tests.faults import netns
from hil_tests.faults.relay import RTO_MS, Impairment
from hil_tests.profile import CI, Profile
from hil_tests.steps import contiguous, gaps
from hil_tests.storm import peak_per_second


def namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split(" ")[0] for line in out.splitlines() if line}


def test_bench_namespace_is_deleted_by_close_and_by_a_sweep_after_its_owner_died() -> None:
    assert netns.available() is None, "the bench needs root and iproute2 (run as root)"
    ns = netns.NetNs.allocate()
    assert ns.name in namespaces()
    ns.close()
    ns.close()  # idempotent
    assert ns.name not in namespaces()
    # a run killed before its finalizers: the namespace is left, owned by a dead process
    code = (
        "from hil_tests.faults.netns import NetNs; import os; ns = NetNs.allocate(); "
        "print(ns.name, flush=True); os._exit(9)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[1]
    )
    orphan = proc.stdout.strip()
    assert orphan in namespaces(), proc.stderr
    mine = netns.NetNs.allocate()  # a live owner's namespace survives the sweep
    try:
        gone = netns.sweep()
        assert orphan in gone and orphan not in namespaces()
        assert mine.name in namespaces()
    finally:
        mine.close()


def test_bench_impairment_holds_each_chunk_the_delay_and_loses_about_the_share() -> None:
    rng = random.Random(7)
    imp = Impairment(delay_ms=200, loss_pct=10)
    holds = [imp.hold_ms(rng) for _ in range(10_000)]
    assert set(holds) == {200, 200 + RTO_MS}
    lost = holds.count(200 + RTO_MS) / len(holds)
    assert 0.08 < lost < 0.12
    assert Impairment().hold_ms(rng) == 0


def test_bench_gap_arithmetic() -> None:
    assert gaps([1, 2, 4, 7]) == [3, 5, 6]
    assert gaps([]) == []
    assert contiguous([1, 2, 3, 5]) == 3
    assert contiguous([2, 3]) == 0
    assert peak_per_second([0.1, 0.2, 1.5, 1.6, 1.7, 9.0], since=0.0) == 3
    assert peak_per_second([0.5], since=1.0) == 0


def test_bench_profile_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="outage_s"):
        Profile(**{**CI.__dict__, "outage_s": 0})
    with pytest.raises(ValueError, match="storm_devices"):
        Profile(**{**CI.__dict__, "storm_devices": 0})


def test_bench_report_has_every_figure_and_a_chart_per_series(tmp_path: Path) -> None:
    a = report.Figure("t::a", "outage", "virtual-agent", "drained in 3.0 s", "PASS")
    a.add("backlog", 0.0, 5)
    a.add("backlog", 1.0, 0)
    b = report.Figure("t::b", "birth", "virtual-esp32", "", "FAIL", detail="boom")
    path = report.write([a, b], tmp_path, "header line")
    text = path.read_text()
    assert "| outage | virtual-agent | PASS | drained in 3.0 s |" in text
    assert "| birth | virtual-esp32 | FAIL | - |" in text
    assert "boom" in text and "header line" in text
    charts = list((tmp_path / "charts").glob("*.png"))
    assert [c.name for c in charts] == ["t_a.png"]  # b has no series: no chart
    assert charts[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

"""agent.diag: the log ring, the crash record across runs, and the size cap (pure `fit`)."""

from __future__ import annotations

import logging
from pathlib import Path

from agent import diag
from protocol import messages as m

BASE = m.Diag(sender="rig-1", seq=7, boot=2, ts_ms=1, uptime_s=30, figures={"rss_kb": 1000})


def test_fit_keeps_the_newest_lines_under_the_cap() -> None:
    lines = [f"{i:04d} " + "x" * 150 for i in range(200)]
    out = diag.fit(BASE, lines)
    size = len(m.encode(out))
    assert size <= m.MAX_DIAG_BYTES
    assert out.log == tuple(lines[-len(out.log) :])  # the newest, oldest first
    # One more line would not fit: the cut is as small as it can be.
    bigger = m.Diag(**{**BASE.__dict__, "log": tuple(lines[-len(out.log) - 1 :])})
    assert len(m.encode(bigger)) > m.MAX_DIAG_BYTES
    assert out.figures == BASE.figures and out.seq == 7


def test_fit_keeps_everything_that_fits() -> None:
    assert diag.fit(BASE, ["a", "b"]).log == ("a", "b")
    assert diag.fit(BASE, []).log == ()


def test_ring_is_bounded_and_keeps_the_newest() -> None:
    ring = diag.LogRing(lines=3)
    logger = logging.getLogger("test-ring")
    logger.addHandler(ring)
    logger.setLevel(logging.INFO)
    try:
        for i in range(5):
            logger.info("line %d", i)
    finally:
        logger.removeHandler(ring)
    tail = ring.tail(10)
    assert [t.rsplit(" ", 1)[-1] for t in tail] == ["2", "3", "4"]
    assert len(ring.tail(2)) == 2 and ring.tail(0) == []


def test_crash_record_across_runs(tmp_path: Path) -> None:
    assert diag.last_crash(tmp_path) == ("", 0)
    assert diag.start_run(tmp_path, 1_000) is False  # first run
    diag.end_run(tmp_path)
    assert diag.start_run(tmp_path, 2_000) is False  # the previous one stopped cleanly
    # No end_run: killed. The next start finds the marker and records an unclean exit.
    assert diag.start_run(tmp_path, 3_000) is True
    assert diag.last_crash(tmp_path) == (diag.UNCLEAN, 3_000)
    # An exception recorded during a run is kept as it is at the next start.
    diag.record_crash(tmp_path, "RuntimeError: boom", 3_500)
    assert diag.start_run(tmp_path, 4_000) is True
    assert diag.last_crash(tmp_path) == ("RuntimeError: boom", 3_500)

"""tools.bench --render: docs/benchmarks.md rewritten from a saved run, without rerunning it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import psycopg
import pytest

from tools.bench.__main__ import main
from tools.bench.common import Pgbench, find_pgbench, pgbench_tps
from tools.bench.pool import _postgres_figures


def test_render_rewrites_the_markdown_from_saved_figures(tmp_path: Path) -> None:
    saved = {
        "machine": {"cpu": "Test CPU", "cores": 2, "system": "Linux", "python": "3.11.7"},
        "quick": False,
        "failed": [],
        "figures": [
            {"suite": "agent", "name": "idle RSS", "value": 53.2, "unit": "MB",
             "target": "<= 40", "peer": "floor 43.7 MB", "note": "", "meets": False},
            {"suite": "agent", "name": "drain", "value": 3048.0, "unit": "msg/s",
             "target": ">= 2000", "peer": None, "note": "acked", "meets": True},
        ],
    }  # fmt: skip
    source = tmp_path / "bench.json"
    source.write_text(json.dumps(saved))
    target = tmp_path / "bench.md"
    assert main(["--render", str(source), "--markdown", str(target)]) == 0
    text = target.read_text()
    assert "Machine: Test CPU, 2 cores, Linux, Python 3.11.7." in text
    assert "| agent | idle RSS | 53.2 | MB | <= 40 | **no** | floor 43.7 MB |" in text
    assert "| agent | drain | 3,048 | msg/s | >= 2000 | yes | acked |" in text
    assert "## Reading the figures" in text


def test_render_refuses_a_file_that_is_not_a_saved_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "bench.json"
    source.write_text('{"figures": []}')
    target = tmp_path / "bench.md"
    assert main(["--render", str(source), "--markdown", str(target)]) == 2
    assert "cannot render" in capsys.readouterr().err
    assert not target.exists()


def test_render_shows_the_pool_against_pgbench(tmp_path: Path) -> None:
    figures = _postgres_figures(500.0, 1_800.0, Pgbench(2_000.0, "pgbench -c 1 -T 3 -n"))
    saved = {
        "machine": {"cpu": "Test CPU", "cores": 2, "system": "Linux", "python": "3.11.7"},
        "quick": False,
        "failed": [],
        "figures": [f.to_json() for f in figures],
    }
    source = tmp_path / "bench.json"
    source.write_text(json.dumps(saved))
    target = tmp_path / "bench.md"
    assert main(["--render", str(source), "--markdown", str(target)]) == 0
    text = target.read_text()
    assert "| pool | pgbench TPC-B-like, 1 client (same run) | 2,000 | tx/s |" in text
    assert "| postgresql: 1 command per transaction | 500 | cmd/s |  |  | 0.25 of pgbench;" in text
    assert (
        "| postgresql: 50 commands per transaction | 1,800 | cmd/s |  |  | 0.90 of pgbench;" in text
    )
    assert "| pool | postgresql 50 per transaction / pgbench | 0.9 | ratio | >= 0.7 | yes |" in text
    assert "**Pool against pgbench.**" in text


def test_below_the_goal_the_ratio_row_says_no() -> None:
    figures = _postgres_figures(100.0, 1_000.0, Pgbench(2_000.0, "pgbench"))
    ratio = [f for f in figures if f.unit == "ratio"]
    assert [(f.value, f.meets) for f in ratio] == [(0.5, False)]


def test_without_pgbench_only_its_figure_is_skipped_and_the_rows_say_why() -> None:
    missing = pgbench_tps("postgresql://unused@127.0.0.1:1/x", 1, None)
    assert missing.tps is None and "pgbench not found" in missing.why_not
    figures = _postgres_figures(500.0, 1_800.0, missing)
    assert [(f.name, f.value) for f in figures] == [
        ("postgresql: 1 command per transaction", 500.0),
        ("postgresql: 50 commands per transaction", 1_800.0),
    ]
    assert all("pgbench not found" in (f.peer or "") for f in figures)


@pytest.mark.postgres
def test_pgbench_runs_in_a_schema_of_its_own_and_drops_it() -> None:
    dsn = os.environ.get("CP_TEST_PG_DSN")
    if not dsn:
        pytest.skip("CP_TEST_PG_DSN is not set: no PostgreSQL on this machine")
    pgbench = find_pgbench()
    assert pgbench is not None, "pgbench ships with the PostgreSQL server that CP_TEST_PG_DSN names"

    def pgbench_tables() -> int:
        # Counted in every schema: other tests create and drop schemas of their own meanwhile.
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT COUNT(*) FROM pg_tables WHERE tablename LIKE 'pgbench%'")
            return int(row.fetchone()[0])

    before = pgbench_tables()
    run = pgbench_tps(dsn, 1, pgbench)
    assert run.tps is not None and run.tps > 0, run.why_not
    assert pgbench_tables() == before  # its schema and its four tables are gone


def test_only_some_suites_keeps_the_rows_of_the_others() -> None:
    """`--only firmware` rewrites the firmware rows and keeps every other suite's as it was."""
    from tools.bench.__main__ import keep_other_suites, markdown
    from tools.bench.common import Figure

    machine = {"cpu": "Test CPU", "cores": 2, "system": "Linux", "python": "3.11.7"}
    old = markdown(
        [Figure("protocol", "verify", 12_000.0, "ops/s"), Figure("firmware", "sign", 9.0, "ms"),
         Figure("bridge", "rate", 900.0, "msg/s")], machine, False, [],
    )  # fmt: skip
    new = markdown([Figure("firmware", "sign", 1.5, "ms")], machine, False, [])
    text = keep_other_suites(old, new, {"firmware"})
    rows = [line for line in text.splitlines() if line.startswith("| ") and "suite" not in line]
    assert rows == [
        "| protocol | verify | 12,000 | ops/s |  |  |  |",
        "| bridge | rate | 900 | msg/s |  |  |  |",
        "| firmware | sign | 1.5 | ms |  |  |  |",
    ]
    assert (
        "Rows of protocol, bridge: kept from an earlier run (Test CPU, 2 cores, Linux, Python"
        " 3.11.7); this one ran firmware." in text
    )
    assert keep_other_suites(new, new, {"firmware"}) == new  # nothing else to keep
    later = markdown([Figure("firmware", "sign", 1.4, "ms")], {**machine, "cpu": "Other CPU"},
                     False, [])  # fmt: skip
    again = keep_other_suites(text, later, {"firmware"})
    assert "| firmware | sign | 1.4 | ms |" in again and "| bridge | rate | 900 |" in again
    assert "kept from an earlier run (Test CPU, 2 cores" in again  # where those rows were made

"""What every benchmark shares: the Figure record, the run context, and small helpers."""

from __future__ import annotations

import contextlib
import glob
import os
import platform
import re
import resource
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import quote

from tools.broker import Mosquitto


@dataclass(frozen=True)
class Figure:
    """One measured number. `target` is like "<= 40" or ">= 2000" (same unit) or None."""

    suite: str
    name: str
    value: float
    unit: str
    target: str | None = None
    peer: str | None = None
    note: str = ""

    @property
    def meets(self) -> bool | None:
        if self.target is None:
            return None
        op, _, bound = self.target.partition(" ")
        limit = float(bound)
        return {"<=": self.value <= limit, ">=": self.value >= limit}[op]

    def to_json(self) -> dict[str, object]:
        out = asdict(self)
        out["meets"] = self.meets
        return out


@dataclass
class Context:
    """Shared by all suites of one run. `quick` shortens every benchmark (for smoke runs)."""

    quick: bool = False
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="cp-bench-")))
    pg_dsn: str | None = field(default_factory=lambda: os.environ.get("CP_BENCH_PG_DSN"))
    progress: Callable[[str], None] = print

    @contextlib.contextmanager
    def mosquitto(self, name: str = "broker") -> Iterator[tuple[str, int]]:
        """A private Mosquitto on an ephemeral port for the duration of the block."""
        broker = BenchBroker(self.workdir / name)
        broker.start()
        try:
            yield "127.0.0.1", broker.port
        finally:
            broker.stop()


class BenchBroker(Mosquitto):
    """The project's Mosquitto launcher (tools/broker.py) set for load: no persistence, a
    million queued messages per offline client, no limit on messages in flight to a client."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(
            workdir,
            persistence=False,
            max_queued_messages=1_000_000,
            extra_config="max_inflight_messages 0\n",
        )


def rss_mb() -> float:
    """Resident set size of this process now, in MB (from /proc; ru_maxrss elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def machine() -> dict[str, object]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
    }


@contextlib.contextmanager
def pg_schema(dsn: str) -> Iterator[str]:
    """A private PostgreSQL schema for one benchmark: the DSN that selects it; dropped after."""
    import psycopg

    schema = f"bench_{secrets.token_hex(4)}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        sep = "&" if "?" in dsn else "?"
        yield f"{dsn}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


PGBENCH_GLOB = "/usr/lib/postgresql/*/bin/pgbench"
"""Where Debian and Ubuntu install pgbench when it is not on PATH."""


def find_pgbench() -> str | None:
    """pgbench (it ships with PostgreSQL): from PATH, else the newest PostgreSQL's."""
    on_path = shutil.which("pgbench")
    if on_path:
        return on_path

    def major(path: str) -> int:
        parts = Path(path).parts  # /usr/lib/postgresql/<major>/bin/pgbench
        return int(parts[-3]) if parts[-3].isdigit() else 0

    installed = sorted(glob.glob(PGBENCH_GLOB), key=major)
    return installed[-1] if installed else None


@dataclass(frozen=True)
class Pgbench:
    """pgbench's single-client TPC-B-like rate, or why there is none (`tps` None)."""

    tps: float | None
    command: str
    why_not: str = ""


_TPS = re.compile(r"^tps = ([0-9.]+)", re.MULTILINE)


def pgbench_tps(dsn: str, seconds: int, pgbench: str | None) -> Pgbench:
    """Run `pgbench` (a path, or None if there is none) with its TPC-B-like script and one
    client for `seconds` in a private schema (`pgbench -i -s 1`, then `pgbench -c 1 -T seconds
    -n`); the schema is dropped after."""
    command = f"pgbench -i -s 1; pgbench -c 1 -T {seconds} -n"
    if pgbench is None:
        return Pgbench(None, command, f"pgbench not found on PATH or in {PGBENCH_GLOB}")
    with pg_schema(dsn) as url:
        for argv in (
            [pgbench, "-i", "-s", "1", "-q", url],
            [pgbench, "-c", "1", "-T", str(seconds), "-n", url],
        ):
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                return Pgbench(None, command, f"{Path(pgbench).name} {argv[1]} failed: {last}")
    found = _TPS.search(done.stdout)
    if found is None:
        return Pgbench(None, command, "no 'tps = ' line in pgbench's output")
    return Pgbench(float(found.group(1)), command)

"""What every benchmark shares: the Figure record, the run context, and small helpers."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import secrets
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

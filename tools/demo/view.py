"""What the demo shows while it runs: a rich live view, or plain progress lines without a TTY.

Both render a `Frame`, a snapshot the main loop assembles a few times a second from the agents'
status files, the watcher's record and the moments; nothing here reads files or the network.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

from tools.demo.moments import Moment
from tools.demo.watch import Record, percentile, rate
from tools.fleet.devices import DeviceStatus
from tools.fleet.plan import DeviceSpec

LINK_STYLE = {
    "connected": "green",
    "disconnected": "bold red",
    "starting": "yellow",
    "stopped": "dim",
}
MARK = {"done": ("✓", "bold green"), "failed": ("✗", "bold red"), "armed": ("…", "yellow")}


@dataclass(frozen=True)
class Frame:
    elapsed_s: float
    duration_s: float
    phase: str  # what the script is doing now, in a few words
    broker: str  # "mosquitto (MQTT 5) mqtt://127.0.0.1:40411"
    broker_up: bool
    devices: list[tuple[DeviceSpec, DeviceStatus]]
    record: Record
    moments: list[Moment]
    tap: str  # the command that watches the same broker
    clone: str = ""  # the cloned device's id while its clone runs


def _yuan(fen: int) -> str:
    return f"{fen / 100:,.0f}"


def _took(moment: Moment) -> str:
    took = moment.took_s
    return f"{took:.1f} s" if took is not None else ""


def latency_ms(record: Record) -> tuple[float, float]:
    values = [ms for _t, ms in record.latency]
    return percentile(values, 50), percentile(values, 99)


def devices_table(frame: Frame) -> Table:
    table = Table(title="devices", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for name, justify in (
        ("device", "left"),
        ("kind", "left"),
        ("user", "left"),
        ("link", "left"),
        ("seq", "right"),
        ("acked", "right"),
        ("backlog", "right"),
        ("risk ‰", "right"),
    ):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for spec, status in frame.devices:
        name = spec.device_id + (" +clone" if spec.device_id == frame.clone else "")
        table.add_row(
            Text(name, style="bold magenta" if spec.device_id == frame.clone else ""),
            spec.kind,
            spec.user,
            Text(status.link, style=LINK_STYLE.get(status.link, "")),
            str(status.last_seq),
            str(status.acked),
            Text(str(status.backlog), style="yellow" if status.backlog > 10 else ""),
            "" if status.risk_pm is None else str(status.risk_pm),
        )
    return table


def pools_table(record: Record) -> Table:
    table = Table(title="pools (yuan)", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("user", "status", "limit", "available", "outstanding", "held", "rate"):
        table.add_column(name, justify="left" if name in ("user", "status") else "right")
    for user in sorted(record.pools):
        p = record.pools[user]
        table.add_row(
            user,
            Text(p.status, style="bold red" if p.status == "frozen" else "green"),
            _yuan(p.limit_fen),
            _yuan(p.available_fen),
            _yuan(p.outstanding_fen),
            _yuan(p.held_fen),
            f"{p.rate_bps / 100:.2f}%",
        )
    return table


def decisions_table(record: Record) -> Table:
    table = Table(title="decisions", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("action")
    table.add_column("result")
    table.add_column("count", justify="right")
    for (action, result), n in sorted(record.by_outcome.items(), key=lambda kv: -kv[1]):
        table.add_row(action, Text(result, style="" if result == "ok" else "yellow"), str(n))
    return table


def moments_table(moments: list[Moment]) -> Table:
    table = Table(
        title="moments", title_justify="left", show_header=False, box=None, pad_edge=False
    )
    table.add_column("", width=1)
    table.add_column("moment", no_wrap=True)
    table.add_column("took", justify="right", no_wrap=True)
    table.add_column("detail", no_wrap=True, overflow="ellipsis")
    for moment in moments:
        mark, style = MARK.get(moment.state, ("·", "dim"))
        table.add_row(
            Text(mark, style=style),
            moment.title,
            _took(moment),
            moment.failed or moment.detail,
        )
    return table


WIDE = 140  # columns from which devices and pools fit side by side


def render(frame: Frame, width: int = WIDE) -> RenderableType:
    """The whole live view for one frame, laid out for a terminal `width` columns wide."""
    rec = frame.record
    p50, p99 = latency_ms(rec)
    head = Text.assemble(
        ("credit-pool demo  ", "bold"),
        f"{frame.elapsed_s:4.0f} / {frame.duration_s:.0f} s   ",
        (frame.phase, "bold cyan"),
        "   broker ",
        (frame.broker, "green" if frame.broker_up else "bold red"),
        "" if frame.broker_up else "  DOWN",
    )
    rates = Text.assemble(
        f"reports/s {rate(rec.reports, frame.elapsed_s):6.1f}   ",
        f"decisions/s {rate(rec.decisions, frame.elapsed_s):6.1f}   ",
        f"decisions {sum(rec.decisions)}   ",
        f"latency p50 {p50:.0f} ms  p99 {p99:.0f} ms   ",
        f"risk notes {sum(rec.risk.values())}",
    )
    body = Table.grid(padding=(0, 3))
    if width >= WIDE:
        body.add_row(devices_table(frame), Group(pools_table(rec), decisions_table(rec)))
    else:  # stacked: the devices, then pools and decisions side by side
        side = Table.grid(padding=(0, 3))
        side.add_row(pools_table(rec), decisions_table(rec))
        body.add_row(devices_table(frame))
        body.add_row(side)
    watch = Text.assemble(("watch live: ", "dim"), (frame.tap, "dim cyan"))
    return Panel(
        Group(head, rates, body, moments_table(frame.moments), watch),
        border_style="blue",
    )


def progress_line(frame: Frame) -> str:
    """One plain line for logs and pipes."""
    rec = frame.record
    p50, p99 = latency_ms(rec)
    links = [s.link for _spec, s in frame.devices]
    done = sum(m.state == "done" for m in frame.moments)
    frozen = sum(p.status == "frozen" for p in rec.pools.values())
    return (
        f"[{frame.elapsed_s:5.1f}s] {frame.phase:<18} "
        f"connected {links.count('connected')}/{len(links)}  "
        f"reports/s {rate(rec.reports, frame.elapsed_s):5.1f}  "
        f"decisions {sum(rec.decisions):>6}  p50 {p50:.0f} ms p99 {p99:.0f} ms  "
        f"frozen pools {frozen}  moments {done}/{len(frame.moments)}"
    )


def moment_line(moment: Moment, elapsed_s: float) -> str:
    mark = MARK.get(moment.state, ("·", ""))[0]
    took = f" after {_took(moment)}" if moment.took_s is not None else ""
    return f"[{elapsed_s:5.1f}s] {mark} {moment.title}{took}: {moment.failed or moment.detail}"


class PlainDisplay:
    """Progress lines: one every few seconds, one per moment as it happens (logs, pipes, CI)."""

    def __init__(self, every_s: float = 5.0) -> None:
        self.every_s = every_s
        self._next = 0.0
        self._states: dict[str, str] = {}

    def progress(self, what: str, done: int, total: int) -> None:
        print(f"  [{done:>{len(str(total))}}/{total}] {what}", flush=True)

    def show(self, frame: Frame) -> None:
        for moment in frame.moments:
            if self._states.get(moment.key, "waiting") != moment.state and moment.state in (
                "done",
                "failed",
            ):
                print(moment_line(moment, frame.elapsed_s), flush=True)
            self._states[moment.key] = moment.state
        if frame.elapsed_s >= self._next or frame.phase == "stopping":
            self._next = frame.elapsed_s + self.every_s
            print(progress_line(frame), flush=True)

    def close(self) -> None:
        pass


class LiveDisplay:
    """A progress bar while setting up, then the live view, redrawn four times a second."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._live: Live | None = None
        self._frame: Frame | None = None

    def progress(self, what: str, done: int, total: int) -> None:
        if self._progress is None:
            self._progress = Progress(
                TextColumn("[bold]setting up"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.description}"),
                console=self.console,
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(what, total=total)
        assert self._task is not None
        self._progress.update(self._task, description=what, completed=done, total=total)

    def show(self, frame: Frame) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        self._frame = frame
        view = render(frame, self.console.width)
        if self._live is None:
            self._live = Live(view, console=self.console, refresh_per_second=4, screen=False)
            self._live.start()
        else:
            self._live.update(view)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
        if self._live is not None:
            self._live.stop()

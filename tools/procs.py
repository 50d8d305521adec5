"""Child processes that never outlive the tool that started them.

Every long-lived child (agents, the bridge, Mosquitto) is started through a `Supervisor`, which
stops them all on the way out: normal exit, failure, Ctrl-C or SIGTERM. As a second line, on
Linux each child asks the kernel to send it SIGTERM when its parent dies (PR_SET_PDEATHSIG), so
not even a SIGKILL of the tool leaves orphans. The kernel ties that signal to the thread that
forked the child, so long-lived children must be started from the main thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType

PR_SET_PDEATHSIG = 1
# Loaded in the parent: the child (between fork and exec) should only call into it.
_LIBC = (
    ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True) if sys.platform == "linux" else None
)


def die_with_parent() -> None:
    """A `preexec_fn`: the kernel sends this child SIGTERM when its parent thread exits."""
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    """Starts children, remembers them, and stops every one that is still running on close."""

    def __init__(self) -> None:
        self.children: list[subprocess.Popen[bytes]] = []

    def spawn(
        self,
        argv: Sequence[str],
        log_path: Path,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start `argv` with stdout and stderr appended to `log_path`."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                preexec_fn=die_with_parent,
                # Own process group: a Ctrl-C in the terminal reaches only this tool, which then
                # stops the children in order (agents first, so they can say goodbye).
                start_new_session=True,
            )
        self.children.append(proc)
        return proc

    @staticmethod
    def stop(proc: subprocess.Popen[bytes], timeout_s: float = 10) -> int:
        """SIGTERM, wait up to `timeout_s`, then SIGKILL. Returns the exit code."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def stop_many(self, procs: Sequence[subprocess.Popen[bytes]], timeout_s: float = 10) -> None:
        """SIGTERM all at once (they shut down in parallel), then SIGKILL whoever is left."""
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for proc in procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def close(self, timeout_s: float = 10) -> None:
        """Stop every child still running, newest first."""
        self.stop_many(list(reversed(self.children)), timeout_s)

    def running(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.children if p.poll() is None]


class Interrupted(KeyboardInterrupt):
    """SIGTERM, delivered to the main thread like Ctrl-C so every `finally` runs."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises `Interrupted` in the main thread."""

    def handler(_sig: int, _frame: FrameType | None) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

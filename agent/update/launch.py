"""The launcher systemd runs (ExecStart): it starts the release `current` names and judges a
trial release. It is the base install's own code and is never replaced by a self-update: a bad
release cannot break the thing that rolls it back.

    python -m agent.update.launch --state-dir /var/lib/edge-agent -- run --config agent.toml

Before every start it records the start in the update state (a trial release is rolled back
after `max_starts` starts or past its deadline: agent.update.machine, event Started) and puts
the `current` symlink where the state says (`expected_current`), which mends a power cut
between a state write and a switch. While a trial runs it looks at the deadline every second
and stops a release that never got a report acked. The agent's exit status 75 (switched to a
new release) starts `current` again at once; a trial release that fails is started again until
its starts run out; any other exit ends the launcher with the agent's status (systemd's
Restart= then decides).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from agent.update import release
from agent.update.machine import Phase, Started, Tick, UpdateState, expected_current
from agent.update.store import UpdateStore
from agent.update.worker import EXIT_RESTART

log = logging.getLogger("agent.update.launch")

TICK_S = 1.0
TRIAL_TICK_S = 5.0
"""A trial's elapsed time is persisted this often (a write per second would wear an SD card)."""
TRIAL_RESTART_DELAY_S = 1.0
STOP_TIMEOUT_S = 15.0


def command_for(
    state_dir: Path, name: str, agent_args: list[str]
) -> tuple[list[str], dict[str, str]]:
    """The agent's command line and environment for release `name` ("" is the base install):
    the release's packages first on the module path, run from the state directory (so that
    nothing in a working directory shadows them)."""
    env = dict(os.environ)
    if env.get("WATCHDOG_PID") == str(os.getpid()):
        del env["WATCHDOG_PID"]  # systemd's watchdog is meant for the agent (NotifyAccess=all)
    if name:
        path = str(release.release_dir(state_dir, name))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (path, env.get("PYTHONPATH", "")) if p)
    return [sys.executable, "-m", "agent.cli", *agent_args], env


def prepare(store: UpdateStore) -> tuple[str, UpdateState]:
    """Before a start: count it (Started), then point `current` where the state says. The
    release to start ("" the base install) and the state."""
    t = store.apply(Started())
    state = t.state
    if t.changed and state.phase is Phase.ROLLED_BACK:
        log.warning("launch: rolled back to %r: %s", state.running or "base", state.reason)
    name = expected_current(state)
    if name and not (release.release_dir(store.dir, name) / release.MARKER).exists():
        log.error("launch: release %s is missing; running the base install", name)
        name = ""
    release.switch(store.dir, name)
    return name, state


class Launcher:
    def __init__(self, state_dir: Path, agent_args: list[str]) -> None:
        self.dir = state_dir
        self.args = agent_args
        self.store = UpdateStore(state_dir)
        self.child: subprocess.Popen[bytes] | None = None
        self.stopping = False

    def stop(self, *_: object) -> None:
        """SIGTERM/SIGINT: pass it on to the agent and end when it does."""
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)

    def run(self) -> int:
        while True:
            name, state = prepare(self.store)
            log.info("launch: starting %s (%s)", name or "the base install", state.phase.value)
            code = self._run_child(name)
            if self.stopping:
                return code
            if code == EXIT_RESTART:
                continue
            after = self.store.load()
            if after.phase is Phase.ROLLED_BACK and state.phase is Phase.TRIAL:
                continue  # stopped by the deadline: start the previous release
            if after.phase is Phase.TRIAL:
                log.warning("launch: trial release %s exited %d", after.target, code)
                time.sleep(TRIAL_RESTART_DELAY_S)
                continue
            return code

    def _run_child(self, name: str) -> int:
        cmd, env = command_for(self.dir, name, self.args)
        self.child = subprocess.Popen(cmd, env=env, cwd=self.dir)
        counted = time.monotonic()  # the trial time runs on this clock, never the wall clock
        try:
            while True:
                try:
                    return self.child.wait(TICK_S)
                except subprocess.TimeoutExpired:
                    pass
                now = time.monotonic()
                if now - counted < TRIAL_TICK_S or self.store.load().phase is not Phase.TRIAL:
                    continue
                elapsed_ms, counted = int((now - counted) * 1000), now
                t = self.store.apply(Tick(elapsed_ms))
                if t.state.phase is Phase.ROLLED_BACK:
                    log.warning("launch: %s; stopping the trial release", t.state.reason)
                    self.child.send_signal(signal.SIGTERM)
                    try:
                        return self.child.wait(STOP_TIMEOUT_S)
                    except subprocess.TimeoutExpired:
                        self.child.kill()
                        return self.child.wait()
        finally:
            if self.child.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.child.kill()
                self.child.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m agent.update.launch",
        description="Start the agent release that <state-dir>/current names; roll a trial "
        "release back after [update] max_starts failed starts or trial_s without an acked "
        "report. Everything after -- is passed to `edge-agent`.",
        epilog="example: python -m agent.update.launch --state-dir /var/lib/edge-agent -- "
        "run --config /etc/edge-agent/agent.toml --offline-ok",
    )
    parser.add_argument("--state-dir", type=Path, required=True, help="the agent's data_dir")
    parser.add_argument("agent_args", nargs=argparse.REMAINDER, help="-- then edge-agent's")
    args = parser.parse_args(argv)
    agent_args = args.agent_args[1:] if args.agent_args[:1] == ["--"] else args.agent_args
    if not agent_args:
        parser.error("give the agent's arguments after --, e.g. -- run --config agent.toml")
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    launcher = Launcher(args.state_dir.resolve(), agent_args)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, launcher.stop)
    return launcher.run()


if __name__ == "__main__":
    sys.exit(main())

"""Seeded simulation of the send window without a broker (tests/agent/window_sim.py).

Random walks of a few hundred steps each, the invariants checked after every step, then
everything must be delivered once the faults stop. A failure names its seed; replay one with
`WINDOW_SIM_SEED=<seed> pytest tests/agent/test_window_sim.py -k seeded`. Hypothesis drives
the same steps as a state machine and shrinks any failure to a short story.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.agent.window_sim import ACK_TIMEOUT_MS, STATE_TIMEOUT_MS, InvariantBroken, Sim

SEEDS = [int(os.environ["WINDOW_SIM_SEED"])] if "WINDOW_SIM_SEED" in os.environ else range(10)
STEPS = 600


@pytest.fixture
def fast_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory in memory when there is one: the outbox fsyncs every numbering."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir=shm) as d:
        yield Path(d)


@pytest.mark.parametrize("seed", SEEDS)
def test_seeded_walk_keeps_the_invariants_and_delivers_everything(
    fast_dir: Path, seed: int
) -> None:
    sim = Sim(fast_dir, seed)
    step = 0
    try:
        for step in range(STEPS):  # noqa: B007 (reported on failure)
            sim.random_step()
            sim.check()
        sim.settle(reconnect=seed % 2 == 0)
    except AssertionError as exc:
        raise AssertionError(
            f"seed {seed}, step {step}: {exc}\n  last events: {sim.log}\n"
            f"  replay: WINDOW_SIM_SEED={seed} pytest {__file__} -k seeded"
        ) from exc
    finally:
        sim.close()
    assert len(sim.wire) > 0  # the walk did send something


@pytest.mark.parametrize("seed", SEEDS)
def test_a_walk_then_a_hostile_retained_state_still_delivers_everything_on_acks(
    fast_dir: Path, seed: int
) -> None:
    """After the walk, an attacker's retained state stays and the bridge's answers are lost:
    the device sees no valid state, yet drains on the bridge's acks."""
    sim = Sim(fast_dir, 1000 + seed)
    try:
        for _ in range(STEPS // 2):
            sim.random_step()
            sim.check()
        sim.put(100)
        sim.settle_on_acks()
    except AssertionError as exc:
        raise AssertionError(f"seed {1000 + seed}: {exc}\n  last events: {sim.log}") from exc
    finally:
        sim.close()
    assert sim.seen["on acks, draining"] > 0


def test_a_walk_reaches_every_kind_of_event(fast_dir: Path) -> None:
    """The random walk is not idle: it retransmits, times out, loses and duplicates,
    reconnects, kills and gates on the bridge."""
    sim = Sim(fast_dir, 7)
    retransmitted = 0
    for _ in range(STEPS):
        sim.random_step()
        retransmitted = max(retransmitted, sim.device.window.retransmitted)
    sim.settle(reconnect=True)
    sim.close()
    assert retransmitted > 0
    kinds = {
        "put",
        "connect",
        "disconnect",
        "kill",
        "bridge offline",
        "bridge online",
        "stale state",
        "hostile empty",
        "hostile foreign",
        "re-announcement lost",
        "on acks, draining",
        "message lost",
        "ack lost",
    }
    assert kinds <= set(sim.seen), kinds - set(sim.seen)


def test_an_invariant_breach_is_caught(fast_dir: Path) -> None:
    """The checks can fail: a device that deletes an unacked message is caught."""
    sim = Sim(fast_dir, 1)
    sim.put(3)
    sim.connect()
    sim.run_device()
    sim.device.outbox.ack(2)  # as if an ack arrived that the bridge never sent
    with pytest.raises(InvariantBroken, match=r"not stored|deleted before"):
        sim.check()
    sim.close()


class WindowMachine(RuleBasedStateMachine):
    """The same steps, chosen by Hypothesis (which shrinks a failure to a short story)."""

    directory: Path
    examples = itertools.count(1)

    def __init__(self) -> None:
        super().__init__()
        self.n = next(self.examples)
        d = self.directory / f"ex{self.n}"
        d.mkdir()
        self.sim = Sim(d, seed=self.n)

    @rule(n=st.sampled_from([1, 2, 7, 70]))
    def put(self, n: int) -> None:
        self.sim.put(n)

    @rule(times=st.integers(1, 8))
    def deliver_to_bridge(self, times: int) -> None:
        for _ in range(times):
            self.sim.deliver_to_bridge()

    @rule(times=st.integers(1, 8))
    def deliver_to_device(self, times: int) -> None:
        for _ in range(times):
            self.sim.deliver_to_device()

    @rule()
    def run_device(self) -> None:
        self.sim.run_device()

    @rule(ms=st.sampled_from([5, 150, ACK_TIMEOUT_MS + 1, STATE_TIMEOUT_MS]))
    def advance(self, ms: int) -> None:
        self.sim.advance(ms)

    @rule()
    def connect(self) -> None:
        self.sim.connect()

    @precondition(lambda self: self.sim.connected)
    @rule()
    def disconnect(self) -> None:
        self.sim.disconnect()

    @rule()
    def kill(self) -> None:
        self.sim.kill()

    @rule()
    def bridge_offline(self) -> None:
        self.sim.bridge_offline()

    @rule(restart=st.booleans())
    def bridge_online(self, restart: bool) -> None:
        self.sim.bridge_online(restart)

    @rule()
    def replay_stale_state(self) -> None:
        self.sim.replay_stale_state()

    @rule()
    def hostile_state(self) -> None:
        self.sim.hostile_state()

    @invariant()
    def holds(self) -> None:
        self.sim.check()

    def teardown(self) -> None:
        try:
            self.sim.settle(reconnect=self.n % 2 == 0)
        finally:
            self.sim.close()


def test_state_machine(fast_dir: Path) -> None:
    WindowMachine.directory = fast_dir
    run_state_machine_as_test(
        WindowMachine,
        settings=settings(
            max_examples=30,
            stateful_step_count=60,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture],
        ),
    )

"""Issue 16 item 5, acceptance: every change of a pool, from every source, reaches the cloud
team. A real bridge process, a real fridge agent, the real `cloud-bridge pool` CLI and a real
`cloud-bridge scheduler` on a secured Mosquitto, on SQLite and PostgreSQL: a subscriber that
stays sees every change as signed PoolEvents, device holds, operator commands, a repayment and
the scheduler's hold expiries, gapless per user in (version, index) and in that order; one that
joins late finds every pool's current PoolState retained."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from protocol import envelope
from protocol import messages as m
from tests.agent.harness import wait
from tests.bridge.harness import ROOT, Bridge, bridge_cli
from tests.bridge.test_end_to_end import FRIDGE_RULE
from tests.harness.mosquitto import Mosquitto
from tools.procs import die_with_parent

pytestmark = [pytest.mark.broker, pytest.mark.slow]

USERS = ("u-1", "u-2")


class Team:
    """A cloud-team subscriber on cp/v1/test/pool/#: every PoolEvent and PoolState, verified
    with the bridge key, in arrival order."""

    def __init__(self, broker: Mosquitto, bridge: Bridge, name: str) -> None:
        self.events: list[m.PoolEvent] = []
        self.states: list[m.PoolState] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        key = bridge.key.verify_key
        self.verify = lambda payload: envelope.unseal(payload, lambda kid: key)[1]
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name)
        self.client.username_pw_set(name, bridge.login(name))
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe("cp/v1/test/pool/#", qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert self.subscribed.wait(10)

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        message = self.verify(msg.payload)
        with self.lock:
            if isinstance(message, m.PoolEvent):
                assert msg.topic == f"cp/v1/test/pool/{message.user}/event"
                self.events.append(message)
            elif isinstance(message, m.PoolState):
                self.states.append(message)

    def of(self, user: str) -> tuple[list[m.PoolEvent], list[m.PoolState]]:
        with self.lock:
            return (
                [e for e in self.events if e.user == user],
                [s for s in self.states if s.user == user],
            )

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def pool(bridge: Bridge, *args: str) -> None:
    where = ("--data", str(bridge.data), "--config", str(bridge.config))
    bridge_cli("pool", *args, *where)


def stored(bridge: Bridge, user: str) -> tuple[int, dict[tuple[int, int], str]]:
    """The pool's version and its events by (version, index), as the database has them."""
    version = int(bridge.query("SELECT version FROM pools WHERE user_id = ?", (user,))[0][0])  # type: ignore[call-overload]
    rows = bridge.query("SELECT version, seq, kind FROM pool_events WHERE user_id = ?", (user,))
    return version, {(int(v), int(i)): str(k) for v, i, k in rows}  # type: ignore[call-overload]


def test_every_change_from_every_source_is_published_in_order(
    tmp_path: Path, private_broker: Mosquitto, store_url: str
) -> None:
    url = private_broker.url
    # Holds of device events live 2 s, so the scheduler expires them during the test.
    bridge = Bridge.create(
        tmp_path / "bridge", url, store_url, extra="\n[policy]\nhold_ttl_s = 2\n"
    )
    fridge = bridge.device(
        tmp_path, "fridge-1", "fridge", url, "u-1", extra_toml=FRIDGE_RULE, interval_s=0.2
    )
    bridge.start()
    team = Team(private_broker, bridge, "team")
    log = open(bridge.data / "scheduler.log", "ab")  # noqa: SIM115 - owned by the process
    scheduler = subprocess.Popen(
        [
            sys.executable, "-m", "cloud_bridge.cli", "scheduler", "--data", str(bridge.data),
            "--config", str(bridge.config), "--interval-s", "0.2",
        ],
        cwd=ROOT, stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=die_with_parent,
    )  # fmt: skip
    try:
        pool(bridge, "open", "--user", "u-1", "--limit", "50000000")  # operator
        pool(bridge, "open", "--user", "u-2", "--limit", "5000000")
        fridge.start("--offline-ok")  # device: restock holds on u-1

        def holds() -> int:
            rows = bridge.query(
                "SELECT count(*) FROM pool_commands WHERE user_id = 'u-1' AND kind = 'hold'"
                " AND result = 'ok'"
            )
            return int(rows[0][0])  # type: ignore[call-overload]

        assert wait(lambda: holds() >= 3, 60), bridge.log()[-2000:]
        pool(bridge, "draw", "--user", "u-2", "--amount", "200000")
        pool(bridge, "repay", "--user", "u-2", "--amount", "50000", "--key", "bank-tx-1")
        fridge.stop()

        def expired() -> int:
            rows = bridge.query(
                "SELECT count(*) FROM pool_events WHERE user_id = 'u-1' AND kind = 'hold_expired'"
            )
            return int(rows[0][0])  # type: ignore[call-overload]

        # Every hold the fridge got expires (2 s each): by the schedule, or by the time the
        # engine lets act before a later hold of the fridge.
        assert wait(lambda: expired() == holds(), 60), (bridge.data / "scheduler.log").read_text()[
            -2000:
        ]

        def caught_up() -> bool:
            for user in USERS:
                version, _ = stored(bridge, user)
                events, states = team.of(user)
                if not states or states[-1].version != version:
                    return False
                if not any(e.version == version for e in events):
                    return False
            return True

        assert wait(caught_up, 60), bridge.log()[-2000:]
    finally:
        if fridge.proc:
            fridge.stop()
        scheduler.send_signal(signal.SIGTERM)
        scheduler.wait(20)

    commands_seen: dict[str, set[str]] = {}
    for user in USERS:
        version, in_db = stored(bridge, user)
        events, states = team.of(user)
        firsts: list[tuple[int, int]] = []
        for e in events:  # at least once: a repeat of a (version, index) is dropped
            if (e.version, e.index) not in firsts:
                firsts.append((e.version, e.index))
        assert firsts == sorted(firsts), f"{user}: out of order: {firsts}"
        assert set(firsts) == set(in_db), f"{user}: gaps or extras"
        by_pair = {(e.version, e.index): e for e in events}
        for v in range(1, version + 1):  # gapless versions, each with its whole change
            count = by_pair[(v, 0)].count
            assert all((v, i) in by_pair for i in range(count)), (user, v)
        assert {p: e.event for p, e in by_pair.items()} == in_db
        commands_seen[user] = {e.command for e in events}
        assert [s.version for s in states] == sorted({s.version for s in states})
    # Device, operator, repayment and scheduler changes all arrived.
    assert {"open", "hold", "tick"} <= commands_seen["u-1"]
    assert {"open", "draw", "repay"} <= commands_seen["u-2"]
    expiries = [e for e in team.of("u-1")[0] if e.event == "hold_expired"]
    assert "tick" in {e.command for e in expiries}  # at least the last ones: by the schedule

    late = Team(private_broker, bridge, "late")
    try:
        for user in USERS:
            version, _ = stored(bridge, user)
            assert wait(lambda user=user: bool(late.of(user)[1]), 10), user
            assert [s.version for s in late.of(user)[1]] == [version]
            assert late.of(user)[0] == []  # events are not retained: the state is the summary
    finally:
        late.close()
        team.close()
        bridge.stop()

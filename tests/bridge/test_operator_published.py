"""Operator commands are published (issue 16 item 5): `cloud-bridge pool ...` run by the real
CLI writes the signed pool state into the outbox in the change's own transaction, and the real
bridge process publishes it on a real, secured Mosquitto. A subscriber that stays sees every
change with increasing versions; a refused command or a replayed key publishes nothing; one that
joins late finds the current state retained."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud_bridge.store import open_store
from protocol import envelope
from protocol import messages as m
from tests.agent.harness import wait
from tests.bridge.harness import Bridge, bridge_cli
from tests.harness.mosquitto import Mosquitto

pytestmark = [pytest.mark.broker, pytest.mark.slow]

TOPIC = "cp/v1/test/pool/u-1/state"


class Watcher:
    """A cloud-team subscriber with its own observer account: every pool state it receives,
    verified with the bridge key, in arrival order."""

    def __init__(self, broker: Mosquitto, bridge: Bridge, name: str) -> None:
        self.states: list[m.PoolState] = []
        self.foreign = 0
        self.lock = threading.Lock()
        self.key = bridge.key.verify_key
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name)
        self.client.username_pw_set(name, bridge.login(name))
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe("cp/v1/test/pool/+/state", qos=1)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        _s, state = envelope.unseal(msg.payload, lambda kid: self.key)
        with self.lock:
            if isinstance(state, m.PoolState) and msg.topic == TOPIC:
                self.states.append(state)
            else:
                self.foreign += 1

    def versions(self) -> list[int]:
        with self.lock:
            return [s.version for s in self.states]

    def last(self) -> m.PoolState:
        with self.lock:
            return self.states[-1]

    def sees(self, version: int, timeout_s: float = 20) -> bool:
        return wait(lambda: version in self.versions(), timeout_s)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def pool(bridge: Bridge, *args: str) -> subprocess.CompletedProcess[str]:
    """`cloud-bridge pool ...` as an operator runs it beside the bridge: its --data (the key,
    the database) and its config (the fleet and the bridge's id)."""
    where = ("--data", str(bridge.data), "--config", str(bridge.config))
    return bridge_cli("pool", *args, *where, check=False)


def version(bridge: Bridge) -> int:
    return int(bridge.query("SELECT version FROM pools WHERE user_id = 'u-1'")[0][0])


def test_operator_commands_reach_a_staying_and_a_late_subscriber(
    tmp_path: Path, private_broker: Mosquitto, store_url: str
) -> None:
    bridge = Bridge.create(tmp_path / "bridge", private_broker.url, store_url)
    # Opened while no bridge runs: the state waits in the outbox until one does.
    assert pool(bridge, "open", "--user", "u-1", "--limit", "5000000").returncode == 0
    opened = version(bridge)
    bridge.start()
    watcher = Watcher(private_broker, bridge, "team")
    try:
        assert watcher.sees(opened), bridge.log()[-2000:]

        assert pool(bridge, "draw", "--user", "u-1", "--amount", "200000").returncode == 0
        drawn = version(bridge)
        assert drawn > opened
        assert watcher.sees(drawn), bridge.log()[-2000:]
        assert watcher.last().outstanding_fen == 200_000

        repay = ("repay", "--user", "u-1", "--amount", "50000", "--key", "bank-tx-1")
        assert pool(bridge, *repay).returncode == 0
        repaid = version(bridge)
        assert repaid > drawn
        assert watcher.sees(repaid), bridge.log()[-2000:]
        assert watcher.last().outstanding_fen == 150_000
        assert watcher.last().available_fen == 5_000_000 - 150_000

        assert pool(bridge, "freeze", "--user", "u-1", "--reason", "fraud").returncode == 0
        frozen = version(bridge)
        assert frozen > repaid
        assert watcher.sees(frozen), bridge.log()[-2000:]
        assert watcher.last().status == "frozen"
        seen_at_freeze = len(watcher.versions())

        # Changes nothing, so publishes nothing: a replayed key and a refused draw.
        assert pool(bridge, *repay).returncode == 0
        refused = pool(bridge, "draw", "--user", "u-1", "--amount", "1000")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert version(bridge) == frozen

        assert pool(bridge, "unfreeze", "--user", "u-1").returncode == 0
        thawed = version(bridge)
        assert watcher.sees(thawed), bridge.log()[-2000:]
        assert watcher.last().status == "open"
        # Only the unfreeze arrived after the freeze (the bridge publishes in commit order).
        assert watcher.versions()[seen_at_freeze:] == [thawed]
        versions = watcher.versions()
        assert versions == sorted(set(versions)), versions
        assert versions[0] == opened and watcher.foreign == 0

        late = Watcher(private_broker, bridge, "late")
        try:
            assert late.sees(thawed, 10), late.versions()
            assert late.versions() == [thawed]
            assert late.last().status == "open" and late.last().outstanding_fen == 150_000
        finally:
            late.close()
        # Every output of the CLI was taken over by the bridge and, once acknowledged, deleted.
        assert wait(lambda: bridge.query("SELECT count(*) FROM outputs")[0][0] == 0, 20)
    finally:
        watcher.close()
        bridge.stop()


def test_without_the_bridge_key_a_change_is_refused_unless_no_publish_is_said(
    tmp_path: Path,
) -> None:
    """Review finding 5: without a key the change used to be made and only a note said it was
    not published (subscribers kept an old pool state). Now exit 2 and nothing changes, unless
    --no-publish says that is what the operator wants."""
    db = str(tmp_path / "pools.sqlite3")
    empty = tmp_path / "no-bridge"
    empty.mkdir()
    opening = ("pool", "open", "--user", "u-1", "--limit", "100000", "--db", db)
    run = bridge_cli(*opening, "--data", str(empty), check=False)
    assert run.returncode == 2
    assert "would not be published" in run.stderr and "--no-publish" in run.stderr
    assert "no bridge key" in run.stderr
    show = bridge_cli("pool", "show", "--user", "u-1", "--db", db, check=False)
    assert show.returncode == 1  # no pool: nothing was changed
    run = bridge_cli(*opening, "--data", str(empty), "--no-publish")
    assert run.returncode == 0
    show = bridge_cli("pool", "show", "--user", "u-1", "--db", db, "--data", str(empty))
    assert "limit 100000 fen" in show.stdout
    # --db alone: the default data directory's key may be another bridge's; not used.
    draw = ("pool", "draw", "--user", "u-1", "--amount", "500", "--db", db)
    refused = bridge_cli(*draw, check=False)
    assert refused.returncode == 2 and "--db" in refused.stderr
    assert "outstanding 0," in bridge_cli("pool", "show", "--user", "u-1", "--db", db).stdout
    assert bridge_cli(*draw, "--no-publish").returncode == 0
    # The scheduler too: exit 2 without a key, runs with --no-publish.
    tick = ("scheduler", "--db", db, "--once")
    refused = bridge_cli(*tick, check=False)
    assert refused.returncode == 2 and "--no-publish" in refused.stderr
    assert bridge_cli(*tick, "--no-publish").returncode == 0
    with open_store(db) as store, store.transaction() as tx:
        assert tx.fetchall("SELECT * FROM outputs") == []

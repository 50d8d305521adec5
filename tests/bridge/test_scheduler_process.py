"""Issue 16 item 4, acceptance: statements close and holds expire on schedule with two
`cloud-bridge scheduler` processes on one database, one SIGKILLed mid-way, each exactly once, on
SQLite and PostgreSQL; every change lands once in the outbox as signed PoolEvents and PoolState.

The pools are made with an injected clock (allowed: clocks) so that their first statement and a
hold come due a few seconds into the test, in real time, and the real schedulers run on the
wall clock as in production."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cloud_bridge.broker_cli import CLI_SUFFIX
from cloud_bridge.pool import commands as c
from cloud_bridge.pool.auditor import audit
from cloud_bridge.pool.policy import Policy
from cloud_bridge.pool.service import PoolService, wall_clock_ms
from cloud_bridge.scheduler import tick_key
from cloud_bridge.store import open_store
from cloud_bridge.store import pool_repo as repo
from cloud_bridge.store.ingest_repo import operator_outputs
from protocol import envelope
from protocol import messages as m
from tests.agent.harness import wait
from tests.bridge.harness import ROOT, Bridge
from tools.procs import die_with_parent

pytestmark = [pytest.mark.slow]

CYCLE = 30 * 86_400_000
POOLS = 40
LEAD_MS = 4_000  # the first pool's work comes due this long after setup
SPREAD_MS = 150  # and each next pool's this much later


def scheduler(bridge: Bridge, name: str) -> subprocess.Popen[bytes]:
    log = open(bridge.data / f"{name}.log", "ab")  # noqa: SIM115 - owned by the process
    return subprocess.Popen(
        [
            sys.executable, "-m", "cloud_bridge.cli", "scheduler", "--data", str(bridge.data),
            "--config", str(bridge.config), "--interval-s", "0.05", "--batch", "3",
        ],
        cwd=ROOT, stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=die_with_parent,
    )  # fmt: skip


def closed_statements(bridge: Bridge) -> int:
    rows = bridge.query("SELECT count(*) FROM pool_events WHERE kind = 'statement_closed'")
    return int(rows[0][0])  # type: ignore[call-overload]


def test_two_schedulers_one_killed_close_and_expire_each_exactly_once(
    tmp_path: Path, store_url: str
) -> None:
    bridge = Bridge.create(tmp_path / "bridge", "mqtt://127.0.0.1:1", store_url)
    start = wall_clock_ms()
    users = [f"u{i:03d}" for i in range(POOLS)]
    statement_due = {}
    with open_store(store_url) as store:
        for i, user in enumerate(users):
            due = start + LEAD_MS + i * SPREAD_MS
            # Opened one cycle before `due` (the injected clock), so its first statement is due
            # then; the hold is placed now and expires a little before it.
            opened = PoolService(store, Policy(), clock=lambda due=due: due - CYCLE)
            opened.execute(c.OpenPool(user=user, key="open", limit_fen=1_000_000))
            now = PoolService(store, Policy(), clock=wall_clock_ms)
            ttl = due - 500 - wall_clock_ms()
            assert ttl > 0, "setup took too long for the schedule it set"
            now.execute(c.PlaceHold(user=user, key="h", hold_id="h1", amount_fen=1_000, ttl_ms=ttl))
            statement_due[user] = due
    assert closed_statements(bridge) == 0

    a, b = scheduler(bridge, "sched-a"), scheduler(bridge, "sched-b")
    try:
        assert wait(lambda: closed_statements(bridge) >= POOLS // 4, 60), (
            bridge.data / "sched-a.log"
        ).read_text()[-2000:]
        # Mid-way: A has done some of the work (its log says so) and most is still ahead.
        assert wait(lambda: "pools due" in (bridge.data / "sched-a.log").read_text(), 30)
        a.send_signal(signal.SIGKILL)
        a.wait(10)
        killed_at = closed_statements(bridge)
        assert killed_at < POOLS
        assert wait(lambda: closed_statements(bridge) == POOLS, 60), (
            bridge.data / "sched-b.log"
        ).read_text()[-2000:]
        time.sleep(0.5)  # a second application, were there one, would land by now
    finally:
        for proc in (a, b):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(20)
    assert b.returncode == 0

    with open_store(store_url) as store, store.transaction() as tx:
        assert audit(tx) == []
        for user in users:
            events = [e for _v, e in repo.events_of(tx, user)]
            assert [e.kind for e in events] == [
                "opened", "hold_placed", "hold_expired", "statement_closed",
            ], user  # fmt: skip
            assert events[3].at_ms == statement_due[user]  # on its date, not when noticed
            expires = int(events[1].data["expires_ms"])
            assert events[2].at_ms == expires
            ticks = tx.fetchall(
                "SELECT idem_key, ts_ms FROM pool_commands WHERE user_id = ? AND kind = 'tick' "
                "ORDER BY version",  # in the order they were applied
                (user,),
            )
            # Each tick ran at or after the time it was for, under that time's key: the hold's
            # expiry, then (unless one tick did both) the statement date.
            keys = [str(k) for k, _ts in ticks]
            assert keys[0] == tick_key(expires) and set(keys) <= {
                tick_key(expires),
                tick_key(statement_due[user]),
            }, keys
            assert all(int(ts) >= int(str(k).split(":")[1]) for k, ts in ticks), ticks
        # In the order a running bridge adopts and publishes them.
        rows = [
            (r.instance, r.topic, r.payload) for r in operator_outputs(tx, CLI_SUFFIX, 100 * POOLS)
        ]

    # The outbox: every change once, signed with the bridge key, as the running bridge would
    # publish it (sender <bridge id>-cli, adopted by the bridge).
    key = bridge.key.verify_key
    seen: dict[tuple[str, int, int], str] = {}
    states: dict[str, list[int]] = {}
    for instance, topic, payload in rows:
        assert str(instance).endswith("-cli")
        _s, msg = envelope.unseal(bytes(payload), lambda kid: key)  # type: ignore[arg-type]
        if isinstance(msg, m.PoolEvent):
            assert topic == f"cp/v1/test/pool/{msg.user}/event"
            pair = (msg.user, msg.version, msg.index)
            assert pair not in seen, pair
            seen[pair] = msg.event
            assert msg.command == "tick" and msg.key.startswith("tick:")
        else:
            assert isinstance(msg, m.PoolState)
            states.setdefault(msg.user, []).append(msg.version)
    for user in users:
        got = sorted((v, i, kind) for (u, v, i), kind in seen.items() if u == user)
        assert [kind for _v, _i, kind in got] == ["hold_expired", "statement_closed"], user
        assert states[user] == sorted(set(states[user])) and states[user][-1] == got[-1][0]

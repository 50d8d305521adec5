"""Commands from concurrent operator processes (review finding 6): every CLI process signs as
`<bridge id>-cli`, and a device keeps one replay window per sender. With a block of 1000 numbers
per process, two overlapping runs delivered a lower number after a higher one (stale, dropped).
Now the numbers are taken one at a time in the transaction that stores the command, and the
bridge publishes the stored rows in that order."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nacl.signing

from cloud_bridge.broker_cli import CLI_SUFFIX
from cloud_bridge.outputs import in_pool_order
from cloud_bridge.publish import operator_publisher
from cloud_bridge.store import ingest_repo, open_store, registry_repo
from cloud_bridge.store.registry_repo import Device
from protocol import cose
from protocol import messages as m
from protocol.replay import ReplayWindow
from tests.bridge.harness import ROOT, Bridge

KEY = nacl.signing.SigningKey(bytes(range(32)))


def test_numbers_of_concurrent_operator_processes_follow_commit_order(store_url: str) -> None:
    """Two processes (two publishers on one database) taking turns, each number in the
    transaction that stores it: the numbers rise in commit order. With per-process blocks they
    were 1, 1001, 2 (the 2 stale at a device that had 1001, the brief's ReplayWindow case)."""
    with open_store(store_url) as store:
        first, second = (operator_publisher("bridge-1", KEY, store) for _ in range(2))
        assert first.instance == second.instance == f"bridge-1{CLI_SUFFIX}"
        committed: list[int] = []
        for publisher in (first, second, first, second, second, first):
            with store.transaction() as tx:
                committed.append(publisher.next_seq(tx))
        assert committed == sorted(committed) and len(set(committed)) == len(committed)
        window = ReplayWindow()
        for seq in committed:
            window = window.accept(seq)


def test_two_cli_processes_queue_commands_a_device_accepts_in_publishing_order(
    tmp_path: Path,
) -> None:
    """Real CLI processes started together (rotations and configuration changes for one device)
    store their commands in the outbox; taken in the order the bridge takes them, every one
    passes the device's replay window."""
    bridge = Bridge.create(tmp_path / "bridge", "mqtt://127.0.0.1:1")  # no broker needed
    with open_store(bridge.store_url) as store, store.transaction() as tx:
        empty = ReplayWindow().to_bytes()
        device = Device("dev-1", "test", "u-1", "phone", "active", {}, {}, 1, 1)
        registry_repo.insert_device(tx, device, empty, empty)
    where = ["--data", str(bridge.data), "--config", str(bridge.config)]
    base = [sys.executable, "-m", "cloud_bridge.cli", "devices"]
    runs = []
    for i in range(4):
        runs.append([*base, "rotate", "dev-1", *where])
        runs.append([*base, "config", "set", "dev-1", f"report.interval_s={10 + i}", *where])
    procs = [
        subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for argv in runs
    ]
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    with open_store(bridge.store_url) as store, store.transaction() as tx:
        rows = in_pool_order(ingest_repo.operator_outputs(tx, CLI_SUFFIX, 100))
    assert len(rows) == len(runs)
    window = ReplayWindow()
    commands = []
    for row in rows:
        msg = m.decode(cose.peek_payload(row.payload))
        assert isinstance(msg, m.Command) and msg.device == "dev-1"
        assert msg.sender == f"bridge-1{CLI_SUFFIX}"
        assert window.verdict(msg.seq) is None, (msg.seq, window.hi)
        window = window.accept(msg.seq)
        commands.append(msg.command)
    assert sorted(commands) == ["config"] * 4 + ["rotate"] * 4

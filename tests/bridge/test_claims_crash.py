"""Claims and the broker's files (review findings 1 and 9): a bridge killed after a claim's commit
and before the broker's files were rewritten must not leave the device locked out, and a used
token's claim account must not stay on the broker until the token expires.

The claims are decided by the bridge's own FleetDesk on the real store; the "crash" is a desk
whose rewrite of the broker's files never happens (the commit is done, the sync is not), which is
exactly the state a SIGKILL between the two leaves behind. Real broker with ACLs throughout."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import nacl.signing
import pytest

from agent.claim import enrollment, token_of
from cloud_bridge import broker_cli, config
from cloud_bridge.claims import CLAIM_RETRY_MS
from cloud_bridge.fleet_desk import CLAIM_SYNC_S, FleetDesk
from cloud_bridge.metrics import Metrics
from cloud_bridge.publish import Publisher
from cloud_bridge.registry import Registry
from cloud_bridge.store import claims_repo
from protocol import claims as pc
from protocol import cose, envelope, topics
from protocol import messages as m
from protocol.topics import Channel
from tests.bridge.harness import ROOT, Bridge, bridge_cli
from tests.bridge.test_claims_e2e import _connects
from tests.harness.mosquitto import Mosquitto

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def _desk(bridge: Bridge, sync: str, clock: Callable[[], float] = time.monotonic) -> FleetDesk:
    cfg = config.load(bridge.config, bridge.data)
    store = bridge.store()
    registry = Registry()
    with store.transaction() as tx:
        registry.preload(tx)
    publisher = Publisher("bridge-test", bridge.key, store)
    real = lambda: broker_cli.sync(cfg, store)  # noqa: E731
    return FleetDesk(
        cfg, bridge.key, store, registry, publisher, Metrics(),
        real if sync == "real" else (lambda: None), monotonic=clock,
    )  # fmt: skip


def _claim(desk: FleetDesk, bridge: Bridge, claim: bytes, device: str) -> tuple[str, str]:
    """One claim through the desk: (result, broker password if enrolled)."""
    verify = bridge.key.verify_key
    token = token_of(claim, verify)
    key = nacl.signing.SigningKey(bytes((i + sum(device.encode())) % 256 for i in range(32)))
    data = enrollment(key, device, "mcu", token, claim, 1_700_000_000_000)
    desk.received(topics.claim("test", pc.claim_account(token.token)), data)
    answers = desk.step()
    assert len(answers) == 1
    kid = cose.kid_for(verify)
    _s, msg = envelope.unseal(answers[0][1], lambda k: verify if k == kid else None)
    assert isinstance(msg, m.ClaimAnswer) and msg.device == device
    assert answers[0][0] == topics.claim(
        "test", pc.claim_account(token.token), Channel.CLAIM_ANSWER
    )
    password = pc.open_credentials(msg.sealed, key).password if msg.result == "enrolled" else ""
    return msg.result, password


def test_a_claim_whose_rewrite_was_lost_is_healed_by_a_retry_and_by_a_restart(
    tmp_path: Path, private_broker: Mosquitto
) -> None:
    bridge = Bridge.create(tmp_path / "bridge", private_broker.url)
    where = ("--data", str(bridge.data), "--config", str(bridge.config))
    (tmp_path / "users.txt").write_text("alice\n")
    batch_file = tmp_path / "batch.json"
    bridge_cli(
        "claims", "issue", "--count", "2", "--user-map", str(tmp_path / "users.txt"),
        "--ttl", "1h", "--out", str(batch_file), *where,
    )  # fmt: skip
    claims = [bytes.fromhex(t["claim"]) for t in json.loads(batch_file.read_text())["tokens"]]

    # Device A: the claim commits, the bridge dies before the rewrite: locked out.
    crashed = _desk(bridge, "none")
    result, password_a = _claim(crashed, bridge, claims[0], "dev-a")
    assert result == "enrolled"
    assert not _connects(private_broker, "dev-a", password_a)
    # Its retry reaches a bridge that answers "again" (the stored answer, the same password):
    # that rewrites the files too.
    desk = _desk(bridge, "real")
    assert _claim(desk, bridge, claims[0], "dev-a") == ("enrolled", password_a)
    assert desk.metrics.claims.labels(result="again")._value.get() == 1
    assert _connects(private_broker, "dev-a", password_a)

    # Device B: the same crash, then the bridge restarts: its start rewrites the files.
    result, password_b = _claim(_desk(bridge, "none"), bridge, claims[1], "dev-b")
    assert result == "enrolled"
    assert not _connects(private_broker, "dev-b", password_b)
    bridge.start()
    try:
        assert _connects(private_broker, "dev-b", password_b), bridge.log()[-3000:]
    finally:
        bridge.stop()


def test_a_used_tokens_claim_account_leaves_after_the_retry_window(tmp_path: Path) -> None:
    """claims_repo.accounts on the real store: unused tokens stay until they expire; a used one
    stays CLAIM_RETRY_MS for retries of a lost answer, then goes (not at the token's expiry)."""
    bridge = Bridge.create(tmp_path / "bridge", "mqtt://127.0.0.1:1")
    where = ("--data", str(bridge.data), "--config", str(bridge.config))
    (tmp_path / "users.txt").write_text("alice\n")
    batch_file = tmp_path / "batch.json"
    bridge_cli(
        "claims", "issue", "--count", "2", "--user-map", str(tmp_path / "users.txt"),
        "--ttl", "1h", "--out", str(batch_file), *where,
    )  # fmt: skip
    tokens = json.loads(batch_file.read_text())["tokens"]
    used, unused = (pc.claim_account(str(t["token_id"])) for t in tokens)
    store = bridge.store()
    used_at = 1_000
    with store.transaction() as tx:
        claims_repo.mark_used(tx, str(tokens[0]["token_id"]), b"k" * 8, "dev-a", b"answer", used_at)

    def names(now_ms: int) -> set[str]:
        with store.transaction() as tx:
            return {a.username for a in claims_repo.accounts(tx, now_ms)}

    assert names(used_at + CLAIM_RETRY_MS) == {used, unused}
    assert names(used_at + CLAIM_RETRY_MS + 1) == {unused}


def test_the_desk_rewrites_the_broker_files_periodically(tmp_path: Path) -> None:
    """Expired and spent claim accounts leave the broker without any claim arriving: the desk
    rewrites the files every CLAIM_SYNC_S (clock mocked)."""
    bridge = Bridge.create(tmp_path / "bridge", "mqtt://127.0.0.1:1")
    synced: list[float] = []
    now = [1000.0]
    desk = _desk(bridge, "none", clock=lambda: now[0])
    desk.sync = lambda: synced.append(now[0])
    desk.step()
    assert synced == []
    now[0] += CLAIM_SYNC_S - 0.001
    desk.step()
    assert synced == []
    now[0] += 0.002
    desk.step()
    desk.step()
    assert synced == [now[0]]


def test_the_claim_line_saves_each_key_before_its_claim_and_reuses_it(
    tmp_path: Path, private_broker: Mosquitto
) -> None:
    """Review finding 7: tools/fleet/claim_line kept every key in memory until the batch ended,
    then wrote them all world-readable; a killed run wasted every token it had used."""
    bridge = Bridge.create(tmp_path / "bridge", private_broker.url)
    where = ("--data", str(bridge.data), "--config", str(bridge.config))
    (tmp_path / "users.txt").write_text("alice\n")
    batch_file = tmp_path / "batch.json"
    bridge_cli(
        "claims", "issue", "--count", "3", "--user-map", str(tmp_path / "users.txt"),
        "--ttl", "1h", "--out", str(batch_file), *where,
    )  # fmt: skip
    keys = tmp_path / "keys"
    # What a run killed after saving line-00001's key, before its claim went out, left behind.
    saved = nacl.signing.SigningKey.generate()
    keys.mkdir()
    (keys / "line-00001.json").write_text(
        json.dumps({"device": "line-00001", "seed": bytes(saved).hex()})
    )
    line = [
        sys.executable, "-m", "tools.fleet.claim_line", "--batch", str(batch_file),
        "--mqtt-url", private_broker.url, "--bridge-key", bridge.public_key_hex,
        "--keys-dir", str(keys),
    ]  # fmt: skip
    bridge.start()
    try:
        first = subprocess.run(line, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert first.returncode == 0, first.stderr[-3000:] + bridge.log()[-3000:]
        assert json.loads(first.stdout)["enrolled"] == 3
        docs = {p.name: json.loads(p.read_text()) for p in keys.iterdir()}
        assert sorted(docs) == [f"line-{i:05d}.json" for i in range(3)]
        for name in docs:
            assert ((keys / name).stat().st_mode & 0o777) == 0o600, name
        assert docs["line-00001.json"]["seed"] == bytes(saved).hex()
        # Run again (as after a crash): the saved keys claim again, the same credentials come.
        again = subprocess.run(line, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr[-3000:]
        redo = {p.name: json.loads(p.read_text()) for p in keys.iterdir()}
        assert redo == docs
        assert _connects(private_broker, "line-00002", str(docs["line-00002.json"]["password"]))
    finally:
        bridge.stop()
    rows = bridge.query("SELECT public_key FROM device_keys WHERE device_id = ?", ("line-00001",))
    assert [bytes(r[0]) for r in rows] == [bytes(saved.verify_key)]  # type: ignore[call-overload]


def test_a_failed_rewrite_withholds_the_answers_and_the_worker_goes_on(tmp_path: Path) -> None:
    """Credentials for an account the broker does not have yet are not sent: the rewrite
    failed, the answer waits for the device's retry (answered "again", rewriting again)."""
    bridge = Bridge.create(tmp_path / "bridge", "mqtt://127.0.0.1:1")
    (tmp_path / "users.txt").write_text("alice\n")
    batch_file = tmp_path / "batch.json"
    bridge_cli(
        "claims", "issue", "--count", "1", "--user-map", str(tmp_path / "users.txt"),
        "--ttl", "1h", "--out", str(batch_file), "--data", str(bridge.data),
        "--config", str(bridge.config),
    )  # fmt: skip
    claim = bytes.fromhex(json.loads(batch_file.read_text())["tokens"][0]["claim"])
    desk = _desk(bridge, "none")
    failing = [True]

    def sync() -> None:
        if failing[0]:
            raise OSError("disk full")

    desk.sync = sync
    token = token_of(claim, bridge.key.verify_key)
    key = nacl.signing.SigningKey.generate()
    data = enrollment(key, "dev-a", "mcu", token, claim, 1_700_000_000_000)
    desk.received(topics.claim("test", pc.claim_account(token.token)), data)
    assert desk.step() == []
    assert desk.metrics.claims.labels(result="sync_failed")._value.get() == 1
    failing[0] = False
    desk.received(topics.claim("test", pc.claim_account(token.token)), data)
    assert len(desk.step()) == 1
    assert desk.metrics.claims.labels(result="again")._value.get() == 1

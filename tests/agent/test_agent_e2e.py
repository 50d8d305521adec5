"""The agent as a real process against a private Mosquitto and the bridge stand-in."""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path

import nacl.signing
import pytest

from cloud_bridge.store.broker_repo import BrokerAccount
from protocol import envelope, mqtt_password, topics
from protocol import messages as m
from tests.agent.harness import Device, cli, provision, wait
from tests.agent.standin import BRIDGE_SEED, BridgeStandIn
from tests.harness.independent import pycose_verify
from tests.harness.mosquitto import Mosquitto

pytestmark = pytest.mark.broker


STANDIN_LOGIN = ("bridge-standin", "standin-password")


def standin_for(broker: Mosquitto, *devices: Device, online: bool = True) -> BridgeStandIn:
    """The stand-in bridge; on a secured broker the devices' accounts (from the hashes in their
    enrollment records) and a bridge account for the stand-in are written to it first."""
    login = None
    if broker.secure:
        hashed = mqtt_password.hash_password(STANDIN_LOGIN[1])
        accounts = [BrokerAccount(STANDIN_LOGIN[0], "bridge", hashed)]
        accounts += [
            BrokerAccount(d.device_id, "device", d.enrollment().mqtt_hash, "active")
            for d in devices
        ]
        broker.admit("test", accounts)
        login = STANDIN_LOGIN
    return BridgeStandIn(
        broker.host,
        broker.port,
        "test",
        {d.device_id: d.verify_key for d in devices},
        login=login,
    ).start(online)


def make(
    tmp_path: Path,
    broker: Mosquitto,
    device_id: str = "rig-1",
    kind: str = "phone",
    online: bool = True,
    **kw: object,
) -> tuple[Device, BridgeStandIn]:
    bridge_hex = bytes(nacl.signing.SigningKey(BRIDGE_SEED).verify_key).hex()
    dev = provision(tmp_path, device_id, kind, broker.url, bridge_hex, **kw)  # type: ignore[arg-type]
    return dev, standin_for(broker, dev, online=online)


def test_reports_verify_with_pycose_using_the_enrolled_key(tmp_path: Path, broker: Mosquitto):
    dev, bridge = make(tmp_path, broker)
    dev.start()
    try:
        assert bridge.wait_for(lambda g: len(g.data.get("rig-1", {})) >= 5), dev.log()
    finally:
        assert dev.stop() == 0
        bridge.stop()
    enrolled = dev.enrollment()
    births = bridge.got.births
    assert births and births[0].device_kind == "phone" and births[0].resume_seq == 1
    assert len(bridge.got.deaths) == 1 and bridge.got.deaths[0].reason == "shutdown"
    assert bridge.got.deaths[0].seq == births[-1].seq + 1
    raw = bridge.got.raw.get("rig-1", [])  # the envelopes exactly as they came off the wire
    results = pycose_verify([(enrolled.public_key, env) for env in raw[:10]])
    assert results and all(r["ok"] for r in results)
    reports = [m.decode(bytes.fromhex(str(r["payload"]))) for r in results]
    assert all(isinstance(r, m.Report) and r.sender == "rig-1" for r in reports)
    assert all(0 <= r.risk_pm <= 1000 and len(r.features) > 0 for r in reports)  # type: ignore[attr-defined]


@pytest.mark.slow
def test_zero_loss_across_broker_outage_and_agent_sigkill(
    tmp_path: Path, private_broker: Mosquitto
):
    dev, bridge = make(tmp_path, private_broker, interval_s=0.1)
    dev.start()
    try:
        assert bridge.wait_for(lambda g: len(g.data.get("rig-1", {})) >= 20, 30), dev.log()
        private_broker.stop()
        outage_started = time.monotonic()
        time.sleep(10)
        dev.kill()  # SIGKILL in the middle of the outage
        dev.start("--offline-ok")
        time.sleep(max(0.0, 30 - (time.monotonic() - outage_started)))
        private_broker.start()

        def drained() -> bool:
            st = dev.status()
            return st["link"] == "connected" and st["backlog"] == 0 and int(st["last_ack"]) > 300

        assert wait(drained, 60), (dev.status(), dev.log()[-3000:])
        # Quiet the device (a signed config command), so the end state is exact.
        bridge.send_command("rig-1", "config", {"report.interval_s": 3600})
        time.sleep(1)
        assert wait(drained, 30)
    finally:
        if dev.proc:
            dev.stop()
        bridge.stop()
    st = dev.status()
    last = int(st["next_seq"]) - 1
    got = bridge.got.data["rig-1"]
    assert sorted(got) == list(range(1, last + 1))  # every number, none missing
    assert bridge.got.conflicts == []  # no number ever came with different content
    assert int(st["last_ack"]) == last and st["boot"] == 2
    # Reports made during the outage were stored and sent later: their ts_ms span the outage.
    times = sorted(m.decode(p).ts_ms for p in got.values())
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) < 12_000  # the SIGKILL restart is the only pause in collection


def test_emergency_jumps_the_queue(tmp_path: Path, broker: Mosquitto):
    dev, bridge = make(tmp_path, broker, interval_s=0.05, online=False)  # collect a backlog
    dev.start()
    try:
        assert wait(lambda: dev.status()["unsent"] >= 40, 30)
        cli("emergency", "--config", str(dev.config), "--kind", "illness", "--amount-fen", "88800")
        assert wait(lambda: "trigger sos (emergency) stored" in dev.log(), 10)
        assert wait(lambda: dev.status()["unsent"] >= 45, 10)
        bridge.set_online(True)
        assert bridge.wait_for(lambda g: len(g.data.get("rig-1", {})) >= 45, 30)
    finally:
        dev.stop()
        bridge.stop()
    first = m.decode(bridge.got.data["rig-1"][1])
    assert isinstance(first, m.Trigger) and first.priority == 255
    assert first.body == m.EmergencyBody(emergency="illness", source="explicit", amount_fen=88800)


def test_commands_ping_config_and_replay(tmp_path: Path, broker: Mosquitto):
    dev, bridge = make(tmp_path, broker, interval_s=5)
    dev.start()
    try:
        assert bridge.wait_for(lambda g: bool(g.births))
        time.sleep(0.5)
        ping = bridge.send_command("rig-1", "ping")

        def answered(seq: int, result: str):  # type: ignore[no-untyped-def]
            def check(g):  # type: ignore[no-untyped-def]
                return any(
                    getattr(m.decode(p), "cmd_seq", 0) == seq and m.decode(p).cmd_result == result  # type: ignore[attr-defined]
                    for p in g.data.get("rig-1", {}).values()
                )

            return check

        assert bridge.wait_for(answered(ping, "ok"), 10), dev.log()
        # Integers only on the wire (no floats in the contract): whole seconds here.
        cfg = bridge.send_command("rig-1", "config", {"report.interval_s": 1})
        assert bridge.wait_for(answered(cfg, "ok"), 10)
        n = len(bridge.got.data["rig-1"])
        assert bridge.wait_for(lambda g: len(g.data["rig-1"]) >= n + 5, 8)  # 1 s, not 5 s
        bad = bridge.send_command("rig-1", "config", {"device.id": "evil"})
        assert bridge.wait_for(answered(bad, "refused: device.id cannot be set remotely"), 10)
    finally:
        dev.stop()
        bridge.stop()
    # The override survives a restart.
    assert "report.interval_s" in (dev.dir / "outbox.sqlite3").read_bytes().decode("latin-1")


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("bad_config", "[device] kind = 'toaster' must be one of"),
        ("missing_key", "does not exist"),
        ("loose_key", "chmod 600"),
        ("no_broker", "cannot reach the broker"),
    ],
)
def test_startup_failures_are_one_clear_line(
    tmp_path: Path, broker: Mosquitto, setup: str, expected: str
) -> None:
    dev, bridge = make(tmp_path, broker)
    bridge.stop()
    if setup == "bad_config":
        dev.config.write_text(dev.config.read_text().replace('kind = "phone"', 'kind = "toaster"'))
    elif setup == "missing_key":
        (dev.dir / "device.key").unlink()
    elif setup == "loose_key":
        os.chmod(dev.dir / "device.key", 0o644)
    else:
        dev.config.write_text(dev.config.read_text().replace(broker.url, "mqtt://127.0.0.1:9"))
    proc = cli("run", "--config", str(dev.config), check=False, timeout=30)
    assert proc.returncode in (2, 3)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], proc.stderr


def test_corrupt_outbox_is_moved_aside_on_start(tmp_path: Path, broker: Mosquitto):
    dev, bridge = make(tmp_path, broker)
    (dev.dir / "outbox.sqlite3").write_bytes(b"garbage" * 1000)
    dev.start()
    try:
        assert bridge.wait_for(lambda g: len(g.data.get("rig-1", {})) >= 3), dev.log()
    finally:
        dev.stop()
        bridge.stop()
    assert list(dev.dir.glob("outbox.sqlite3.corrupt-*"))
    assert "is corrupt" in dev.log()


def test_status_reports_link_backlog_and_counters(tmp_path: Path, broker: Mosquitto):
    dev, bridge = make(tmp_path, broker)
    before = dev.status()
    assert before["running"] is False and before["link"] == "not running"
    dev.start()
    try:
        assert bridge.wait_for(lambda g: len(g.data.get("rig-1", {})) >= 5)
        assert wait(lambda: dev.status()["last_ack"] >= 5)
        st = dev.status()
        assert st["running"] is True and st["link"] == "connected" and st["bridge_online"] is True
        assert st["boot"] == 1 and int(st["next_seq"]) > 5
    finally:
        dev.stop()
        bridge.stop()


def test_sigkill_leaves_a_signed_death_from_the_last_will(tmp_path: Path, broker: Mosquitto):
    dev, bridge = make(tmp_path, broker)
    dev.start()
    try:
        assert bridge.wait_for(lambda g: len(g.births) == 1 and len(g.data.get("rig-1", {})) > 2)
        dev.kill()
        # The broker notices the dead connection and publishes the will the agent registered.
        assert bridge.wait_for(lambda g: len(g.deaths) == 1, 10)
    finally:
        bridge.stop()
    (death,) = bridge.got.deaths
    assert death.reason == "lost" and death.seq == bridge.got.births[0].seq + 1


def _certs(tmp: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1, made with the openssl command."""
    import subprocess

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tmp, check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    )
    (tmp / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    )
    return tmp / "ca.pem", tmp / "server.pem", tmp / "server.key"


def test_tls_to_the_broker_with_the_configured_ca(tmp_path: Path, broker_factory) -> None:  # type: ignore[no-untyped-def]
    from tests.harness.mosquitto import free_port

    certs = tmp_path / "certs"
    certs.mkdir()
    ca, cert, key = _certs(certs)
    tls_port = free_port()
    mq = broker_factory(
        extra_config=(
            f"listener {tls_port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n"
        )
    )
    dev, bridge = make(tmp_path, mq)  # the stand-in stays on the plain listener
    text = dev.config.read_text().replace(mq.url, f"mqtts://127.0.0.1:{tls_port}")
    dev.config.write_text(text.replace("[mqtt]\n", f'[mqtt]\nca_file = "{ca}"\n'))
    dev.start()
    try:
        assert bridge.wait_for(lambda g: len(g.data.get("rig-1", {})) >= 3, 20), dev.log()
    finally:
        dev.stop()
    # The same device with another CA refuses the broker's certificate and sends nothing.
    (tmp_path / "certs2").mkdir()
    other, _, _ = _certs(tmp_path / "certs2")
    dev.config.write_text(dev.config.read_text().replace(str(ca), str(other)))
    before = len(bridge.got.data["rig-1"])
    dev.start("--offline-ok")
    try:
        assert wait(
            lambda: (
                "CERTIFICATE_VERIFY_FAILED" in str(dev.status()["last_error"])
                or "certificate verify failed" in str(dev.status()["last_error"])
            ),
            20,
        ), dev.status()
        time.sleep(1)
        assert len(bridge.got.data["rig-1"]) == before
    finally:
        dev.stop()
        bridge.stop()


def test_warnings_about_dropped_inbound_messages_are_throttled(
    tmp_path: Path, private_broker: Mosquitto
) -> None:
    # A broker of its own: no state retained by another test's bridge is dropped here.
    dev, bridge = make(tmp_path, private_broker, interval_s=5)
    ping = dict(sender="standin", boot=1, ts_ms=1, device="rig-1", command="ping")
    stranger = nacl.signing.SigningKey(bytes(range(32)))
    forged = envelope.seal(m.Command(seq=1, **ping), stranger)  # type: ignore[arg-type]
    valid = envelope.seal(m.Command(seq=10_000, **ping), bridge.key)  # type: ignore[arg-type]
    cmd_topic = topics.command("test", "rig-1", "ping")
    dev.start()
    try:
        assert bridge.wait_for(lambda g: bool(g.births))
        for _ in range(60):  # not signed by the bridge: dropped as unknown_device
            bridge.client.publish(cmd_topic, forged, 1)
        for _ in range(31):  # one valid command, then the same bytes again: 30 replays
            bridge.client.publish(cmd_topic, valid, 1).wait_for_publish(5)
        assert wait(lambda: _status_file(dev).get("dropped_inbound") == 90, 20), _status_file(dev)
    finally:
        dev.stop()
        bridge.stop()
    log = dev.log()
    # every drop counted; one warning per reason (the interval is a minute)
    assert log.count("link: dropped message on") == 1, log
    assert "unknown_device" in log
    assert log.count("link: replayed command ping") == 1, log


def _status_file(dev: Device) -> dict[str, object]:
    """The running agent's own status.json (rewritten every second), counters included."""
    try:
        return dict(json.loads((dev.dir / "status.json").read_text()))
    except (OSError, ValueError):
        return {}

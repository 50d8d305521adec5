"""SshRig against a stand-in Pi: a local sshd on loopback with its own host key and a generated
client key (hil_tests/drivers/sshd.py). Proves the driver's ssh invocations, the wheel install
into a venv on the host, the detached start, SIGTERM/SIGKILL, logs and file access, and the
errors of a wrong host or a refused key; the agent it starts reaches a private Mosquitto and
sends its birth. Not proven here: an ARM Pi's pip fetching the dependencies (the stand-in's
venv borrows this environment's, `install_deps=False`)."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sysconfig
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import nacl.signing
import pytest

from cloud_bridge.store.broker_repo import BrokerAccount
from hil_tests.drivers.sshd import Sshd, keygen, start_sshd
from hil_tests.rigs.ssh_rig import RigError, SshRig
from protocol import mqtt_password
from tests.agent.harness import Device, provision
from tests.agent.standin import BRIDGE_SEED, BridgeStandIn
from tests.harness.mosquitto import Mosquitto
from tools.broker import free_port

pytestmark = pytest.mark.broker

STANDIN_LOGIN = ("bridge-standin", "standin-password")


def wait_for(predicate: Callable[[], bool], timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    mq = Mosquitto(tmp_path_factory.mktemp("mosquitto"), secure=True)
    mq.start()
    try:
        yield mq
    finally:
        mq.stop()


@pytest.fixture(scope="module")
def device(tmp_path_factory: pytest.TempPathFactory, broker: Mosquitto) -> Device:
    bridge_hex = bytes(nacl.signing.SigningKey(BRIDGE_SEED).verify_key).hex()
    dev = provision(tmp_path_factory.mktemp("pi"), "pi-1", "phone", broker.url, bridge_hex)
    hashed = mqtt_password.hash_password(STANDIN_LOGIN[1])
    broker.admit(
        "test",
        [
            BrokerAccount(STANDIN_LOGIN[0], "bridge", hashed),
            BrokerAccount(dev.device_id, "device", dev.enrollment().mqtt_hash, "active"),
        ],
    )
    return dev


@pytest.fixture(scope="module")
def bridge(broker: Mosquitto, device: Device) -> Iterator[BridgeStandIn]:
    standin = BridgeStandIn(
        broker.host, broker.port, "test", {device.device_id: device.verify_key},
        login=STANDIN_LOGIN,
    ).start(True)  # fmt: skip
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture(scope="module")
def rig(sshd: Sshd, device: Device, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshRig]:
    venv = tmp_path_factory.mktemp("pi-home") / "edge-agent"
    pi = SshRig(
        sshd.host, sshd.user, sshd.port, sshd.key, str(venv),
        known_hosts=sshd.known_hosts, install_deps=False,
    )  # fmt: skip
    pi.install(device.dir)
    # the Pi's dependencies: borrowed from this environment (a Pi downloads them)
    site = Path(sysconfig.get_paths()["purelib"])
    (next(venv.glob("lib/python3*/site-packages")) / "test-deps.pth").write_text(f"{site}\n")
    try:
        yield pi
    finally:
        pi.kill()
        pi.close()


def test_install_puts_the_wheel_in_a_venv_and_the_device_dir_beside_it(
    rig: SshRig, device: Device
) -> None:
    venv = Path(rig.venv)
    assert (venv / "bin" / "edge-agent").is_file() and list(venv.glob("wheels/*.whl"))
    installed = list(venv.glob("lib/python3*/site-packages/agent/cli.py"))
    assert installed, "the agent package is in the venv itself, not borrowed from the checkout"
    for name in ("agent.toml", "device.key", "mqtt.pass"):
        assert (venv / "device" / name).read_bytes() == (device.dir / name).read_bytes()
    assert rig.device_id == "pi-1"


def test_start_runs_the_agent_which_sends_its_birth(
    rig: SshRig, bridge: BridgeStandIn, device: Device
) -> None:
    rig.start()
    assert wait_for(rig.alive)
    assert bridge.wait_for(lambda got: any(b.sender == "pi-1" for b in got.births), 60), rig.logs()
    pid = int(rig.read_file("agent.pid"))
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert cmdline[1].decode().startswith(rig.venv)  # the venv's edge-agent, not the checkout's
    with pytest.raises(RigError, match="already running"):
        rig.start()
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
    assert abs(rig.memory_kb() - rss_kb) < rss_kb // 4  # the host's own figure, read apart
    rig.stop()
    with pytest.raises(RigError, match="not running"):
        rig.memory_kb()
    assert not rig.alive() and not Path(f"/proc/{pid}").exists()
    assert "pi-1" in rig.logs()


def test_sigkill_leaves_the_outbox_whole(rig: SshRig, bridge: BridgeStandIn) -> None:
    boots, goodbyes = rig.logs().count("edge-agent: agent pi-1"), rig.logs().count("(shutdown)")
    rig.start()
    outbox = Path(rig.venv) / "device" / "outbox.sqlite3"
    assert wait_for(lambda: outbox.exists() and "resuming after" in rig.logs().split("boot")[-1])
    time.sleep(1)  # reports flowing
    pid = int(rig.read_file("agent.pid"))
    rig.kill()
    assert not rig.alive() and not Path(f"/proc/{pid}").exists()
    assert rig.logs().count("(shutdown)") == goodbyes  # no goodbye: it was killed
    db = sqlite3.connect(f"file:{outbox}?mode=ro", uri=True)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        db.close()
    rig.start()  # and the agent opens it again
    assert wait_for(lambda: rig.logs().count("edge-agent: agent pi-1") == boots + 2)
    assert wait_for(lambda: "resuming after" in rig.logs().split("boot")[-1]), rig.logs()
    rig.stop()
    assert rig.logs().count("(shutdown)") == goodbyes + 1  # SIGTERM: a clean goodbye


@pytest.mark.parametrize("size", [0, 1, 70_000])
def test_write_then_read_round_trips_every_byte(rig: SshRig, size: int) -> None:
    data = bytes((i * 31 + 7) % 256 for i in range(size))
    rig.write_file("blob.bin", data)
    assert (Path(rig.venv) / "device" / "blob.bin").read_bytes() == data
    assert rig.read_file("blob.bin") == data


def test_a_missing_file_or_a_path_outside_is_an_error(rig: SshRig) -> None:
    with pytest.raises(RigError, match="failed"):
        rig.read_file("no-such-file")
    with pytest.raises(RigError, match="relative to the device directory"):
        rig.read_file("../bin/python")


def test_a_wrong_port_says_nothing_listens(sshd: Sshd) -> None:
    with (
        SshRig("127.0.0.1", sshd.user, free_port(), sshd.key, known_hosts=sshd.known_hosts) as pi,
        pytest.raises(RigError, match=r"Connection refused.*is sshd running"),
    ):
        pi.alive()


def test_a_host_that_never_answers_fails_within_the_connect_timeout() -> None:
    # a listener that accepts but never speaks: ssh's ConnectTimeout covers the banner too.
    # The message is ssh's own "timed out" explained, not the rig's command timeout ("no
    # answer within 120 s"), which is what a missing ConnectTimeout would end in.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        with (
            SshRig("127.0.0.1", "pi", port, connect_timeout_s=2) as pi,
            pytest.raises(RigError, match=r"timed out.*host is down") as raised,
        ):
            pi.alive()
        assert "no answer within" not in str(raised.value)


def test_user_at_host_is_split_as_ssh_does() -> None:
    pi = SshRig("pi@bench-pi-1.local")
    assert (pi.user, pi.host, pi.name) == ("pi", "bench-pi-1.local", "ssh:pi@bench-pi-1.local")
    args = pi.ssh_args()
    assert args[-1] == "bench-pi-1.local" and args[args.index("-l") + 1] == "pi"


def test_the_venv_under_home_is_left_for_the_remote_shell_to_expand(tmp_path: Path) -> None:
    home = SshRig("pi")._q("device/agent.log")  # the default venv, ~/edge-agent
    odd = SshRig("pi", venv="/srv/edge agent;x")._q("device/agent.log")
    shell = subprocess.run(
        ["sh", "-c", f"printf '%s|%s' {home} {odd}"],
        env={"HOME": str(tmp_path)}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert (
        shell.stdout == f"{tmp_path}/edge-agent/device/agent.log|/srv/edge agent;x/device/agent.log"
    )


def test_a_refused_key_says_so(sshd: Sshd, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger.key"
    keygen(stranger)
    with (
        SshRig(sshd.host, sshd.user, sshd.port, stranger, known_hosts=sshd.known_hosts) as pi,
        pytest.raises(RigError, match=r"Permission denied.*authorized_keys"),
    ):
        pi.alive()


def test_an_unknown_host_key_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with (
        SshRig(sshd.host, sshd.user, sshd.port, sshd.key, known_hosts=empty) as pi,
        pytest.raises(RigError, match="Host key verification failed"),
    ):
        pi.alive()

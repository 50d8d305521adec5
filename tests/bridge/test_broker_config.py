"""Broker files from accounts (pure), the accounts' SQL on both databases, and the writer."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cloud_bridge import broker_config as bc
from cloud_bridge import broker_files
from cloud_bridge.broker_files import BrokerReloadError
from cloud_bridge.store import broker_repo, open_store
from cloud_bridge.store import registry_repo as reg
from cloud_bridge.store.broker_repo import BrokerAccount
from cloud_bridge.store.registry_repo import Device
from protocol import mqtt_password

H = mqtt_password.hash_password("s", rand=lambda n: bytes(n))


def test_password_file__admits_active_devices_and_services_only() -> None:
    accounts = [
        BrokerAccount("dev-b", "device", H, "revoked"),
        BrokerAccount("dev-a", "device", H, "active"),
        BrokerAccount("ghost", "device", H, None),  # no such device enrolled
        BrokerAccount("obs", "observer", H),
        BrokerAccount("bridge-1", "bridge", H),
    ]
    assert bc.password_file(accounts) == f"bridge-1:{H}\ndev-a:{H}\nobs:{H}\n"


CHANNELS = ("birth", "death", "report", "trigger", "enroll", "application", "diag")


def test_acl_file__device_patterns_then_one_block_per_service() -> None:
    text = bc.acl_file("f1", [BrokerAccount("b1", "bridge", H), BrokerAccount("o1", "observer", H)])
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines == [
        "pattern write cp/v1/f1/%u/birth",
        "pattern write cp/v1/f1/%u/death",
        "pattern write cp/v1/f1/%u/report",
        "pattern write cp/v1/f1/%u/trigger",
        "pattern write cp/v1/f1/%u/enroll",
        "pattern write cp/v1/f1/%u/application",  # a phone's credit application
        "pattern write cp/v1/f1/%u/diag",
        "pattern read cp/v1/f1/%u/ack",
        "pattern read cp/v1/f1/%u/cmd/+",
        "pattern read cp/v1/f1/bridge/state",
        "user b1",
        *(f"topic deny cp/v1/f1/b1/{c}" for c in CHANNELS),
        "topic read cp/v1/f1/#",
        "topic write cp/v1/f1/+/ack",
        "topic write cp/v1/f1/+/cmd/+",
        "topic write cp/v1/f1/+/claim_answer",
        "topic write cp/v1/f1/pool/+/state",
        "topic write cp/v1/f1/pool/+/decision",
        "topic write cp/v1/f1/pool/+/event",
        "topic write cp/v1/f1/pool/+/payout",
        "topic write cp/v1/f1/risk/+",
        "topic write cp/v1/f1/bridge/state",
        "user o1",
        *(f"topic deny cp/v1/f1/o1/{c}" for c in CHANNELS),
        "topic read cp/v1/f1/#",
    ]


@pytest.mark.parametrize(
    "account",
    [
        BrokerAccount("bad name", "bridge", H),
        BrokerAccount("a+b", "observer", H),
        BrokerAccount("dev-1", "device", "$6$plain", "active"),
    ],
)
def test_render__refuses_a_bad_name_or_hash(account: BrokerAccount) -> None:
    with pytest.raises(bc.BrokerConfigError, match="broker account"):
        bc.render("f1", [account], Path("/etc/x"))


def test_mosquitto_conf__closes_the_broker() -> None:
    conf = bc.mosquitto_conf(Path("/etc/cb"), 8883, Path("/run/m.pid")).splitlines()
    for line in (
        "allow_anonymous false",
        "password_file /etc/cb/passwd",
        "acl_file /etc/cb/acl",
        "message_size_limit 4352",
        "max_packet_size 5376",
        "listener 8883",
        "use_username_as_clientid true",
        "pid_file /run/m.pid",
        "max_queued_messages 100000",
    ):
        assert line in conf
    assert conf.index("use_username_as_clientid true") > conf.index("listener 8883")


def test_repo__accounts_follow_the_device_status(store_url: str) -> None:
    with open_store(store_url) as store, store.transaction() as tx:
        reg.insert_device(tx, Device("dev-a", "f1", "u", "phone", "active", {}, {}, 1, 1), b"", b"")
        broker_repo.put(tx, "dev-a", "device", H, 1)
        broker_repo.put(tx, "b1", "bridge", "old", 1)
        broker_repo.put(tx, "b1", "bridge", H, 2)  # replaced, not added
        broker_repo.put(tx, "ghost", "device", H, 1)
    with open_store(store_url) as store, store.transaction() as tx:
        assert broker_repo.accounts(tx) == [
            BrokerAccount("b1", "bridge", H, None),
            BrokerAccount("dev-a", "device", H, "active"),
            BrokerAccount("ghost", "device", H, None),
        ]
        reg.revoke(tx, "dev-a")
        assert broker_repo.account(tx, "dev-a") == BrokerAccount("dev-a", "device", H, "revoked")
        assert broker_repo.delete(tx, "ghost") == 1
        assert broker_repo.account(tx, "ghost") is None


def test_write__only_changed_files_atomically_and_private(tmp_path: Path) -> None:
    files = bc.render("f1", [BrokerAccount("b1", "bridge", H)], tmp_path)
    assert broker_files.write(tmp_path, files) == ("passwd", "acl", "mosquitto.conf")
    assert broker_files.write(tmp_path, files) == ()
    assert (tmp_path / "passwd").read_text() == f"b1:{H}\n"
    assert stat.S_IMODE((tmp_path / "passwd").stat().st_mode) == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left
    more = bc.render(
        "f1", [BrokerAccount("b1", "bridge", H), BrokerAccount("o", "observer", H)], tmp_path
    )
    assert broker_files.write(tmp_path, more) == ("passwd", "acl")


NOBODY = (65534, 65534)  # another user than the writer, as the broker's user is


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_write__a_rewritten_file_keeps_the_brokers_ownership(tmp_path: Path) -> None:
    """The operator gives the files to the broker's user once; a rewrite by root (an enroll
    run by hand) must not take them back, or Mosquitto, re-reading them as that user after
    SIGHUP, locks every client out."""
    auth = tmp_path / "auth"
    auth.mkdir()
    broker_files.write(auth, bc.render("f1", [BrokerAccount("b1", "bridge", H)], auth))
    for p in auth.iterdir():
        os.chown(p, *NOBODY)
    more = bc.render(
        "f1", [BrokerAccount("b1", "bridge", H), BrokerAccount("o", "observer", H)], auth
    )
    assert broker_files.write(auth, more) == ("passwd", "acl")
    for name in ("passwd", "acl", "mosquitto.conf"):
        st = (auth / name).stat()
        assert (st.st_uid, st.st_gid) == NOBODY, name
        assert stat.S_IMODE(st.st_mode) == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_write__a_new_file_takes_the_directorys_owner(tmp_path: Path) -> None:
    auth = tmp_path / "auth"
    auth.mkdir()
    os.chown(auth, *NOBODY)
    broker_files.write(auth, bc.render("f1", [BrokerAccount("b1", "bridge", H)], auth))
    assert {((auth / n).stat().st_uid, (auth / n).stat().st_gid) for n in ("passwd", "acl")} == {
        NOBODY
    }


def test_apply__sighups_the_pid_after_a_change(tmp_path: Path) -> None:
    # A child that reports SIGHUP on stdout stands for Mosquitto (its reload is tested in
    # tests/broker/test_acl.py).
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import signal,sys,time\n"
         "signal.signal(signal.SIGHUP, lambda *a: (print('hup', flush=True), sys.exit(0)))\n"
         "print('ready', flush=True)\ntime.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        pid_file = tmp_path / "m.pid"
        pid_file.write_text(f"{child.pid}\n")
        applied = broker_files.apply("f1", [], tmp_path / "auth", pid_file=pid_file)
        assert applied.reloaded_pid == child.pid
        assert child.stdout.readline() == "hup\n"
        assert child.wait(10) == 0
        unchanged = broker_files.apply("f1", [], tmp_path / "auth", pid_file=pid_file)
        assert unchanged == broker_files.Applied((), None)  # nothing changed: no signal
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


@pytest.mark.parametrize("content", ["", "abc", "1", "999999999"])
def test_reload__a_bad_or_stale_pid_file_is_a_clear_error(tmp_path: Path, content: str) -> None:
    pid_file = tmp_path / "m.pid"
    pid_file.write_text(content)
    with pytest.raises(BrokerReloadError, match=r"m\.pid"):
        broker_files.reload(pid_file)


def test_reload__a_missing_pid_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BrokerReloadError, match="pid_file"):
        broker_files.reload(tmp_path / "none.pid")

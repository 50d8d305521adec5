"""Broker accounts through the real CLIs, offline: `edge-agent provision`, `cloud-bridge
init`, `devices enroll` / `revoke`, `broker-account` and `broker-config`. The broker's own
behaviour with these files is tested in tests/broker."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from protocol import envelope, mqtt_password
from tests.agent.harness import Device, provision
from tests.bridge.harness import Bridge, bridge_cli

URL = "mqtt://127.0.0.1:1883"  # nothing connects


def _bridge(tmp_path: Path) -> tuple[Bridge, Path]:
    auth = tmp_path / "auth"
    bridge = Bridge.create(tmp_path / "bridge", URL, extra=f'\n[broker]\ndir = "{auth}"\n')
    return bridge, auth


def _cli(bridge: Bridge, *args: str, check: bool = True) -> tuple[int, str, str]:
    proc = bridge_cli(
        *args, "--data", str(bridge.data), "--config", str(bridge.config), check=check
    )
    return proc.returncode, proc.stdout, proc.stderr


def _passwd(auth: Path) -> dict[str, str]:
    lines = (auth / "passwd").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_provision__the_password_stays_on_the_device_its_hash_travels(tmp_path: Path) -> None:
    dev = provision(tmp_path, "phone-1", "phone", URL, "00" * 32)
    _user, secret = dev.login
    assert _mode(dev.dir / "mqtt.pass") == 0o600
    assert mqtt_password.verify(secret, dev.enrollment().mqtt_hash)
    assert secret.encode() not in (dev.dir / "enrollment.cbor").read_bytes()
    config = dev.config.read_text()
    assert 'username = "phone-1"' in config and 'password_file = "mqtt.pass"' in config


def test_init__makes_the_bridge_accounts_once(tmp_path: Path) -> None:
    bridge, auth = _bridge(tmp_path)
    secret = (bridge.data / "mqtt.pass").read_text().strip()
    assert _mode(bridge.data / "mqtt.pass") == 0o600
    accounts = _passwd(auth)
    assert sorted(accounts) == ["bridge-1", "bridge-1-cli"]
    assert all(mqtt_password.verify(secret, h) for h in accounts.values())
    assert _mode(auth / "passwd") == 0o600
    _cli(bridge, "init")  # again: the password and the accounts are kept
    assert (bridge.data / "mqtt.pass").read_text().strip() == secret
    assert _passwd(auth) == accounts


def test_enroll_adds_the_device_and_revoke_leaves_it_out(tmp_path: Path) -> None:
    bridge, auth = _bridge(tmp_path)
    dev = bridge.device(tmp_path, "phone-1", "phone", URL, "alice")
    assert mqtt_password.verify(dev.login[1], _passwd(auth)["phone-1"])
    assert "pattern write cp/v1/test/%u/report" in (auth / "acl").read_text()
    _cli(bridge, "devices", "revoke", "phone-1")
    assert "phone-1" not in _passwd(auth)
    assert sorted(_passwd(auth)) == ["bridge-1", "bridge-1-cli"]


def test_enroll__an_old_record_without_a_hash_enrolls_with_a_warning(tmp_path: Path) -> None:
    bridge, auth = _bridge(tmp_path)
    dev: Device = provision(tmp_path, "phone-1", "phone", URL, bridge.public_key_hex)
    old = dev.enrollment()
    record = type(old)(**{**old.__dict__, "mqtt_hash": ""})
    key = __import__("agent.keys", fromlist=["load"]).load(dev.dir / "device.key")
    old_file = tmp_path / "old.cbor"
    old_file.write_bytes(envelope.seal(record, key))
    code, _out, err = _cli(bridge, "devices", "enroll", str(old_file), "--user", "alice")
    assert code == 0
    assert "phone-1" in err and "no MQTT password hash" in err
    assert "phone-1" not in _passwd(auth)


def test_enroll__a_device_named_like_a_bridge_account_is_refused(tmp_path: Path) -> None:
    bridge, auth = _bridge(tmp_path)
    dev = provision(tmp_path, "bridge-1-cli", "phone", URL, bridge.public_key_hex)
    code, _out, err = _cli(
        bridge, "devices", "enroll", str(dev.dir / "enrollment.cbor"), "--user", "a", check=False
    )
    assert code == 2 and "bridge account" in err and "another id" in err
    assert bridge.query("SELECT device_id FROM devices") == []
    assert mqtt_password.verify(
        (bridge.data / "mqtt.pass").read_text().strip(), _passwd(auth)["bridge-1-cli"]
    )


def test_broker_account__makes_an_observer_and_never_overwrites_a_password(tmp_path: Path) -> None:
    bridge, auth = _bridge(tmp_path)
    pw_file = tmp_path / "obs.pass"
    _cli(bridge, "broker-account", "obs-1", "--role", "observer", "--password-file", str(pw_file))
    assert mqtt_password.verify(pw_file.read_text().strip(), _passwd(auth)["obs-1"])
    assert "user obs-1\n" in (auth / "acl").read_text()
    code, _o, err = _cli(
        bridge, "broker-account", "obs-2", "--role", "observer",
        "--password-file", str(pw_file), check=False,
    )  # fmt: skip
    assert code == 2 and "exists" in err
    assert "obs-2" not in _passwd(auth)


def test_broker_account__a_new_bridge_secret_replaces_its_cli_account_too(tmp_path: Path) -> None:
    """After a stolen data directory: the old secret must log in nowhere, the CLI's account
    (which shares the bridge's secret and role) included."""
    bridge, auth = _bridge(tmp_path)
    old = (bridge.data / "mqtt.pass").read_text().strip()
    new_file = tmp_path / "bridge-new.pass"
    _cli(bridge, "broker-account", "bridge-1", "--role", "bridge", "--password-file", str(new_file))
    new = new_file.read_text().strip()
    accounts = _passwd(auth)
    for name in ("bridge-1", "bridge-1-cli"):
        assert mqtt_password.verify(new, accounts[name]), name
        assert not mqtt_password.verify(old, accounts[name]), name


@pytest.mark.parametrize("name", ["bad name", "a/b", "x" * 65])
def test_broker_account__refuses_a_name_that_is_not_an_id(tmp_path: Path, name: str) -> None:
    bridge, _auth = _bridge(tmp_path)
    code, _o, err = _cli(
        bridge, "broker-account", name, "--role", "observer",
        "--password-file", str(tmp_path / "x.pass"), check=False,
    )  # fmt: skip
    assert code == 2 and "account name" in err
    assert not (tmp_path / "x.pass").exists()


def test_broker_config__writes_to_out_and_says_what_changed(tmp_path: Path) -> None:
    bridge, _auth = _bridge(tmp_path)
    out = tmp_path / "elsewhere"
    _code, first, _e = _cli(bridge, "broker-config", "--out", str(out))
    assert "passwd, acl, mosquitto.conf" in first and "2 accounts (0 devices)" in first
    _code, again, _e = _cli(bridge, "broker-config", "--out", str(out))
    assert "unchanged" in again
    assert f"password_file {out.resolve()}/passwd" in (out / "mosquitto.conf").read_text()


def test_the_bridge_says_its_version(capsys: pytest.CaptureFixture[str]) -> None:
    # operations.md: every bridge is upgraded before devices of a new protocol revision
    from cloud_bridge.cli import main

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == "0.1.0"  # pyproject's version of the package

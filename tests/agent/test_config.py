from __future__ import annotations

from pathlib import Path

import pytest

from agent import config
from agent.config import ConfigError

BRIDGE = "ab" * 32
GOOD = f"""
[device]
id = "rig-01"
fleet = "demo"
kind = "fridge"
data_dir = "data"

[bridge]
public_key = "{BRIDGE}"

[mqtt]
url = "mqtts://broker.example:8883"
ca_file = "ca.pem"

[[triggers.rule]]
name = "milk-low"
kind = "restock"
item = "milk"
priority = 5
full_cost_fen = 2590
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_load__valid_file_resolves_defaults_and_paths(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, GOOD))
    assert (cfg.device_id, cfg.fleet, cfg.kind) == ("rig-01", "demo", "fridge")
    assert cfg.data_dir == (tmp_path / "data").resolve()
    assert cfg.key_file == cfg.data_dir / "device.key"
    assert cfg.bridge_public_key == bytes.fromhex(BRIDGE)
    assert cfg.mqtt.tls and cfg.mqtt.port == 8883 and cfg.mqtt.host == "broker.example"
    assert cfg.mqtt.ca_file == (tmp_path / "ca.pem").resolve()
    assert cfg.mqtt.protocol == "5" and cfg.mqtt.backoff_cap_s == 30.0
    assert cfg.report_interval_s == 60.0 and cfg.outbox_max_messages == 50_000
    assert cfg.rules[0].item == "milk" and cfg.rules[0].full_cost_fen == 2590
    assert len(cfg.sha256) == 32


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('id = "rig-01"', 'id = "rig/01"'), "[device] id = 'rig/01' must be 1-64 characters"),
        (('id = "rig-01"\n', ""), "[device] id is required; add: id = "),
        (('kind = "fridge"', 'kind = "toaster"'), "[device] kind = 'toaster' must be one of"),
        ((f'public_key = "{BRIDGE}"', 'public_key = "abc"'), "[bridge] public_key"),
        (('url = "mqtts://broker.example:8883"', 'url = "http://x"'), "[mqtt] url = 'http://x'"),
        (('url = "mqtts://broker.example:8883"', 'url = "mqtt://x:port"'), "port that is not"),
        (('ca_file = "ca.pem"', "inflight_max = 100"), "[mqtt] inflight_max = 100 must be"),
        (('ca_file = "ca.pem"', "colour = 1"), "[mqtt] colour: unknown key"),
        (("[mqtt]", "[mqttt]"), "unknown section [mqttt]"),
        (('item = "milk"\n', ""), "a restock rule needs item"),
        (("priority = 5", "priority = 999"), "priority = 999 must be an integer from 0 to 255"),
        (("priority = 5", 'priority = "high"'), "priority = 'high'"),
        (("[device]", "[device\n"), "not valid TOML"),
    ],
)
def test_load__bad_config_names_the_key_and_the_fix(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    assert change[0] in GOOD
    with pytest.raises(ConfigError) as err:
        config.load(write(tmp_path, GOOD.replace(change[0], change[1], 1)))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_load__missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        config.load(tmp_path / "nope.toml")


def test_load__duplicate_rule_names(tmp_path: Path) -> None:
    text = GOOD + GOOD[GOOD.index("[[triggers.rule]]") :]
    with pytest.raises(ConfigError, match="rule names must be unique"):
        config.load(write(tmp_path, text))


def test_seed_is_derived_from_the_device_id_unless_given(tmp_path: Path) -> None:
    a = config.load(write(tmp_path, GOOD))
    b = config.load(write(tmp_path, GOOD.replace('id = "rig-01"', 'id = "rig-02"')))
    c = config.load(write(tmp_path, GOOD + "\n[sensors]\nseed = 42\n"))
    assert a.seed != b.seed and c.seed == 42


def test_load__reserved_device_id_and_the_firmware_kind_are_refused(tmp_path: Path) -> None:
    for change, message in (
        (('id = "rig-01"', 'id = "pool"'), "[device] id = 'pool' is reserved"),
        (('kind = "fridge"', 'kind = "mcu"'), "must be one of phone, wearable, fridge, ev;"),
    ):
        with pytest.raises(ConfigError) as err:
            config.load(write(tmp_path, GOOD.replace(*change, 1)))
        assert message in str(err.value)


def test_load__a_bad_rule_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        config.load(write(tmp_path, GOOD.replace("priority = 5", "priority = 5\ncolour = 1")))
    assert str(err.value).startswith("agent.toml: [[triggers.rule]] milk-low colour: unknown key")


def test_schema__generated_file_loads_to_the_defaults(tmp_path: Path) -> None:
    from confschema import to_toml

    generated = to_toml(config.SCHEMA)
    for line in ('id = "rig-01"', 'fleet = "demo"', 'kind = "phone"'):
        generated = generated.replace(f"# {line}  (required)", line)
    generated = generated.replace(
        '# public_key = "<64 hex digits from cloud-bridge init>"  (required)',
        f'public_key = "{BRIDGE}"',
    )
    cfg = config.load(write(tmp_path, generated))
    minimal = config.load(
        write(
            tmp_path,
            '[device]\nid = "rig-01"\nfleet = "demo"\nkind = "phone"\n'
            f'[bridge]\npublic_key = "{BRIDGE}"\n',
        )
    )
    assert cfg.mqtt == minimal.mqtt == config.MqttConfig(client_id="rig-01")
    assert (cfg.report_interval_s, cfg.outbox_max_messages, cfg.day_s) == (60.0, 50_000, 86_400.0)
    assert cfg.data_dir == minimal.data_dir == (tmp_path / "var" / "agent").resolve()

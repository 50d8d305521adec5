"""bridge.toml: defaults from the one schema, and errors that name the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud_bridge import config
from cloud_bridge.config import BridgeConfig, ConfigError
from confschema import to_toml


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bridge.toml"
    path.write_text(text)
    return path


def test_load__defaults_are_the_dataclass_defaults(tmp_path: Path) -> None:
    cfg = config.load(None, tmp_path)
    assert cfg == BridgeConfig(
        path=None, data_dir=tmp_path.resolve(), store_url=str(tmp_path / "bridge.sqlite3")
    )
    assert (cfg.keepalive_s, cfg.batch_max, cfg.emergency_amount("illness")) == (30, 256, 2_000_000)


def test_load__generated_file_loads_to_the_defaults(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, to_toml(config.SCHEMA)), tmp_path)
    assert cfg == BridgeConfig(
        path=(tmp_path / "bridge.toml").resolve(),
        data_dir=tmp_path.resolve(),
        store_url=str(tmp_path.resolve() / "bridge.sqlite3"),
    )


def test_load__valid_values_and_relative_paths(tmp_path: Path) -> None:
    cfg = config.load(
        write(
            tmp_path,
            '[bridge]\nid = "b-2"\nfleet = "prod"\n[mqtt]\nurl = "mqtts://broker:8883"\n'
            'share_group = "bridges"\nca_file = "ca.pem"\n[policy]\nemergency_fen = '
            '{ education = 7 }\n[store]\ndsn = "postgresql://db/x"\n',
        ),
        tmp_path,
    )
    assert (cfg.instance, cfg.fleet, cfg.share_group) == ("b-2", "prod", "bridges")
    assert cfg.tls and cfg.mqtt_port == 8883 and cfg.ca_file == (tmp_path / "ca.pem").resolve()
    assert cfg.store_url == "postgresql://db/x"
    assert [cfg.emergency_amount(k) for k in ("illness", "disaster", "education")] == [
        2_000_000,
        1_000_000,
        7,
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[mqtt]\nkeepalive_s = 2\n",
            "bridge.toml: [mqtt] keepalive_s = 2 must be an integer from 5 to 3600; "
            "for example: keepalive_s = 30",
        ),
        ('[bridge]\nid = "b/1"\n', "[bridge] id = 'b/1' must be 1-64 characters of A-Z"),
        ('[mqtt]\nshare_group = "a.b"\n', "[mqtt] share_group = 'a.b' must be 1-64"),
        ('[mqtt]\nurl = "mqtt://x:port"\n', "port that is not a number"),
        ("[policy]\nemergency_fen = { flood = 1 }\n", "must map illness / disaster / education"),
        ("[metrics]\ncolour = 1\n", "[metrics] colour: unknown key; known: port, host"),
        ("[mqttt]\n", "unknown section [mqttt]; sections: bridge, mqtt"),
        ('[store]\npath = "a"\ndsn = "postgresql://x"\n', "give either path (SQLite) or dsn"),
        # per-mille thresholds are gone: the server's score has per-kind q thresholds
        ("[risk]\nhold_pm = 100\n", "[risk] hold_pm: unknown key; known: model"),
        (
            "[risk]\nkinds = { phone = { step_up_q = -2, hold_q = -20 } }\n",
            "phone: must map device kinds to { step_up_q = <int8>, hold_q = <int8> }",
        ),
        ("[risk]\nkinds = { phone = { step_up_q = -2 } }\n", "[risk] kinds = "),
        ('[risk]\nmismatch = "allow"\n', "[risk] mismatch = "),
        (
            "[ingest]\nqueue_max_bytes = 1000\n",
            "[ingest] queue_max_bytes = 1000 must be an integer from 1048576 to 17179869184; "
            "for example: queue_max_bytes = 67108864 (64 MiB)",
        ),
        (
            "[rejections]\nmax_rows = -1\n",
            "[rejections] max_rows = -1 must be an integer from 0 to 1000000000",
        ),
        ("[retention]\nbatch_rows = 5\n", "[retention] batch_rows = 5 must be an integer from 10"),
    ],
)
def test_load__bad_config_names_the_key_and_the_fix(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        config.load(write(tmp_path, text), tmp_path)
    assert message in str(err.value)
    assert "\n" not in str(err.value)

"""The bridge's TOML configuration (bridge.toml): every default in one schema; a bad file fails
at load naming the key and the fix. Relative paths are relative to the file's directory.

    [bridge]   id (instance id, unique per process), fleet (the fleet this bridge serves)
    [mqtt]     url, protocol, share_group, client_id, keepalive_s, TLS files
    [store]    path (SQLite) or dsn (PostgreSQL)
    [policy]   file (credit-pool policy TOML) and the device-event rules below
    [risk]     risk_pm thresholds for step_up / hold / freeze
    [ingest]   batch_max, batch_wait_ms, queue_max
    [metrics]  port (0: off), host
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cloud_bridge.errors import BridgeError

_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_GROUP = re.compile(r"[A-Za-z0-9_-]{1,64}")


class ConfigError(BridgeError):
    """bridge.toml is missing, unreadable or invalid."""


@dataclass(frozen=True)
class BridgeConfig:
    path: Path | None
    data_dir: Path
    instance: str = "bridge-1"
    fleet: str = "default"
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    mqtt_protocol: str = "5"
    share_group: str = ""
    client_id: str = ""
    keepalive_s: int = 30
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    username: str = ""
    password_file: Path | None = None
    store_url: str = ""
    policy_file: Path | None = None
    hold_ttl_s: int = 900
    emergency_fen: tuple[tuple[str, int], ...] = (
        ("illness", 2_000_000),
        ("disaster", 1_000_000),
        ("education", 500_000),
    )
    step_up_pm: int = 500
    hold_pm: int = 800
    freeze_pm: int = 950
    freeze_after: int = 2
    batch_max: int = 256
    batch_wait_ms: int = 2
    queue_max: int = 100_000
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"

    @property
    def key_path(self) -> Path:
        return self.data_dir / "bridge.key"

    @property
    def mqtt_host(self) -> str:
        return urlsplit(self.mqtt_url).hostname or "127.0.0.1"

    @property
    def mqtt_port(self) -> int:
        parts = urlsplit(self.mqtt_url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    @property
    def tls(self) -> bool:
        return urlsplit(self.mqtt_url).scheme == "mqtts"

    def emergency_amount(self, kind: str) -> int:
        return dict(self.emergency_fen).get(kind, 0)


def default_store_url(data_dir: Path) -> str:
    return str(data_dir / "bridge.sqlite3")


# Each entry: (section, key, attribute, default, checker, fix)
def _int(lo: int, hi: int):  # type: ignore[no-untyped-def]
    def check(v: Any) -> int:
        if type(v) is not int or not lo <= v <= hi:
            raise ValueError(f"must be an integer from {lo} to {hi}")
        return v

    return check


def _str(pattern: re.Pattern[str] | None = None, allow_empty: bool = True):  # type: ignore[no-untyped-def]
    def check(v: Any) -> str:
        if not isinstance(v, str) or (not v and not allow_empty):
            raise ValueError(
                "must be a non-empty string" if not allow_empty else "must be a string"
            )
        if v and pattern is not None and not pattern.fullmatch(v):
            raise ValueError(f"must match {pattern.pattern}")
        return v

    return check


def _url(v: Any) -> str:
    parts = urlsplit(v) if isinstance(v, str) else None
    if parts is None or parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError("must look like mqtt://host:1883 or mqtts://host:8883")
    return str(v)


def _amounts(v: Any) -> tuple[tuple[str, int], ...]:
    kinds = {"illness", "disaster", "education"}
    if (
        not isinstance(v, dict)
        or set(v) - kinds
        or any(type(x) is not int or x < 0 for x in v.values())
    ):
        raise ValueError("must map illness / disaster / education to amounts in fen")
    base = dict(BridgeConfig.emergency_fen)
    base.update(v)
    return tuple(sorted(base.items()))


SCHEMA: dict[str, dict[str, tuple[str, Any, Any, str]]] = {
    "bridge": {
        "id": ("instance", "bridge-1", _str(_ID, False), 'id = "bridge-1" (unique per process)'),
        "fleet": ("fleet", "default", _str(_ID, False), 'fleet = "demo" (one fleet per bridge)'),
        "data_dir": ("data_dir", "", _str(), 'data_dir = "/var/lib/cloud-bridge"'),
    },
    "mqtt": {
        "url": ("mqtt_url", "mqtt://127.0.0.1:1883", _url, 'url = "mqtt://127.0.0.1:1883"'),
        "protocol": ("mqtt_protocol", "5", lambda v: _choice(v, "5", "3.1.1"), 'protocol = "5"'),
        "share_group": ("share_group", "", _str(_GROUP), 'share_group = "bridges"'),
        "client_id": ("client_id", "", _str(), "leave it out: the bridge id is used"),
        "keepalive_s": ("keepalive_s", 30, _int(5, 3600), "keepalive_s = 30"),
        "username": ("username", "", _str(), 'username = "bridge"'),
        "password_file": ("password_file", "", _str(), 'password_file = "mqtt.pass"'),
        "ca_file": ("ca_file", "", _str(), 'ca_file = "ca.pem"'),
        "cert_file": ("cert_file", "", _str(), 'cert_file = "bridge.crt"'),
        "key_file": ("key_file", "", _str(), 'key_file = "bridge.key.pem"'),
    },
    "store": {
        "path": ("store_path", "", _str(), 'path = "bridge.sqlite3"'),
        "dsn": ("store_dsn", "", _str(), 'dsn = "postgresql://bridge@db/bridge"'),
    },
    "policy": {
        "file": ("policy_file", "", _str(), 'file = "pool-policy.toml"'),
        "hold_ttl_s": ("hold_ttl_s", 900, _int(1, 30 * 86_400), "hold_ttl_s = 900"),
        "emergency_fen": ("emergency_fen", None, _amounts, "emergency_fen = { illness = 2000000 }"),
    },
    "risk": {
        "step_up_pm": ("step_up_pm", 500, _int(0, 1000), "step_up_pm = 500"),
        "hold_pm": ("hold_pm", 800, _int(0, 1000), "hold_pm = 800"),
        "freeze_pm": ("freeze_pm", 950, _int(0, 1000), "freeze_pm = 950"),
        "freeze_after": ("freeze_after", 2, _int(1, 100), "freeze_after = 2"),
    },
    "ingest": {
        "batch_max": ("batch_max", 256, _int(1, 10_000), "batch_max = 256"),
        "batch_wait_ms": ("batch_wait_ms", 2, _int(0, 1000), "batch_wait_ms = 2"),
        "queue_max": ("queue_max", 100_000, _int(100, 10_000_000), "queue_max = 100000"),
    },
    "metrics": {
        "port": ("metrics_port", 0, _int(0, 65535), "port = 9108 (0: off)"),
        "host": ("metrics_host", "127.0.0.1", _str(), 'host = "0.0.0.0"'),
    },
}


def _choice(v: Any, *values: str) -> str:
    if v not in values:
        raise ValueError(f"must be one of {', '.join(values)}")
    return str(v)


def load(path: Path | None, data_dir: Path) -> BridgeConfig:
    """Load bridge.toml (or only defaults when `path` is None) for the data directory."""
    doc: dict[str, Any] = {}
    if path is not None:
        try:
            doc = tomllib.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    where = path.name if path else "defaults"
    unknown = sorted(set(doc) - set(SCHEMA))
    if unknown:
        raise ConfigError(f"{where}: unknown section [{unknown[0]}]; sections: {', '.join(SCHEMA)}")
    values: dict[str, Any] = {}
    for section, keys in SCHEMA.items():
        table = doc.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: [{section}] must be a table")
        extra = sorted(set(table) - set(keys))
        if extra:
            raise ConfigError(
                f"{where}: [{section}] {extra[0]}: unknown key; known: {', '.join(keys)}"
            )
        for key, (attr, default, check, fix) in keys.items():
            if key not in table:
                if default is not None:
                    values[attr] = default
                continue
            try:
                values[attr] = check(table[key])
            except ValueError as exc:
                raise ConfigError(
                    f"{where}: [{section}] {key} = {table[key]!r} {exc}; for example: {fix}"
                ) from None
    base = path.resolve().parent if path else Path.cwd()

    def rel(value: str) -> Path | None:
        return (base / value).resolve() if value else None

    if values.pop("data_dir", ""):
        data_dir = rel(doc["bridge"]["data_dir"]) or data_dir
    store_path, store_dsn = values.pop("store_path", ""), values.pop("store_dsn", "")
    if store_path and store_dsn:
        raise ConfigError(
            f"{where}: [store] give either path (SQLite) or dsn (PostgreSQL), not both"
        )
    if store_dsn and not store_dsn.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"{where}: [store] dsn must start with postgresql://")
    store_url = store_dsn or str(rel(store_path) or default_store_url(data_dir))
    if not values["step_up_pm"] <= values["hold_pm"] <= values["freeze_pm"]:
        raise ConfigError(f"{where}: [risk] needs step_up_pm <= hold_pm <= freeze_pm")
    for attr in ("ca_file", "cert_file", "key_file", "password_file", "policy_file"):
        values[attr] = rel(values.get(attr, ""))
    return BridgeConfig(
        path=path.resolve() if path else None,
        data_dir=data_dir.resolve(),
        store_url=store_url,
        **values,
    )

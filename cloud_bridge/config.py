"""The bridge's TOML configuration (bridge.toml): every default in one schema; a bad file fails
at load naming the key and the fix. Relative paths are relative to the file's directory.

    [bridge]   id (instance id, unique per process), fleet (the fleet this bridge serves)
    [mqtt]     url, protocol, share_group, client_id, keepalive_s, TLS files
    [store]    path (SQLite) or dsn (PostgreSQL)
    [policy]   file (credit-pool policy TOML) and the device-event rules below
    [risk]     the model the bridge scores reports with, its calibration file (per-kind
               thresholds on the model's output q), per-kind overrides, the freeze streak, and
               the levels of a tampered or unscored event
    [risk_signals] the per-device signals' thresholds and weights (cloud_bridge.risk.policy)
    [ingest]   batch_max, batch_wait_ms, queue_max, queue_max_bytes
    [rejections] how many refusals are stored a minute (per verified key, per reason when no
               key verified), and how long and how many are kept
    [retention] how long the event and session logs are kept; pruning batch and interval
    [metrics]  port (0: off), host
    [broker]   dir (passwd, acl, mosquitto.conf kept current from the registry), pid_file
               (Mosquitto's, for a reload after each change), port (of the written listener)

Each key is one confschema `Key` in SCHEMA (default, check, example); BridgeConfig's defaults
are read from it, so a default is written once.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cloud_bridge.errors import BridgeError
from cloud_bridge.risk.policy import SECTION as SIGNALS_SECTION
from cloud_bridge.risk.policy import SignalPolicy, SignalPolicyError
from confschema import (
    Invalid,
    Key,
    Schema,
    SchemaError,
    choice,
    integer,
    is_integer,
    keys_of,
    matching,
    mqtt_url,
    read_document,
    text,
)
from protocol.messages import EMERGENCY_KINDS
from protocol.names import ID_PATTERN, ID_RULE, SHARE_GROUP_PATTERN


class ConfigError(BridgeError):
    """bridge.toml is missing, unreadable or invalid."""


# The amount of an emergency draw when the device asks for none, fen, in this order.
_EMERGENCY_FEN = {"illness": 2_000_000, "disaster": 1_000_000, "education": 500_000}


def _amounts(v: Any) -> tuple[tuple[str, int], ...]:
    if (
        not isinstance(v, dict)
        or set(v) - EMERGENCY_KINDS
        or any(not is_integer(x) or x < 0 for x in v.values())
    ):
        raise Invalid(f"must map {' / '.join(_EMERGENCY_FEN)} to amounts in fen")
    return tuple({**_EMERGENCY_FEN, **v}.items())


def _kind_overrides(v: Any) -> tuple[tuple[str, int, int], ...]:
    """{kind = {step_up_q = int, hold_q = int}} as (kind, step_up_q, hold_q), int8 q values
    with step_up_q <= hold_q (cloud_bridge.risk.calibration.KindThresholds)."""
    fix = "must map device kinds to { step_up_q = <int8>, hold_q = <int8> }, step_up_q <= hold_q"
    if not isinstance(v, dict):
        raise Invalid(fix)
    out = []
    for kind, t in sorted(v.items()):
        if (
            not isinstance(t, dict)
            or set(t) != {"step_up_q", "hold_q"}
            or not all(is_integer(x) and -128 <= x <= 128 for x in t.values())
            or t["step_up_q"] > t["hold_q"]
        ):
            raise Invalid(f"{kind}: {fix}")
        out.append((str(kind), int(t["step_up_q"]), int(t["hold_q"])))
    return tuple(out)


_ident = matching(ID_PATTERN, ID_RULE)

# Each key names the BridgeConfig attribute it fills (`attr`) where that is not its own name.
SCHEMA: Schema = {
    "bridge": {
        "id": Key("bridge-1", _ident, 'id = "bridge-1" (unique per process)', attr="instance"),
        "fleet": Key("default", _ident, 'fleet = "demo" (one fleet per bridge)'),
        "data_dir": Key("", text, 'data_dir = "/var/lib/cloud-bridge"'),
    },
    "mqtt": {
        "url": Key("mqtt://127.0.0.1:1883", mqtt_url, attr="mqtt_url"),
        "protocol": Key("5", choice("5", "3.1.1"), attr="mqtt_protocol"),
        "share_group": Key(
            "",
            matching(SHARE_GROUP_PATTERN, "1-64 characters of A-Z a-z 0-9 _ -", allow_empty=True),
            'share_group = "bridges"',
        ),
        "client_id": Key("", text, "leave it out: the bridge id is used"),
        "keepalive_s": Key(30, integer(5, 3600)),
        "username": Key("", text, 'username = "bridge"'),
        "password_file": Key("", text, 'password_file = "mqtt.pass"'),
        "ca_file": Key("", text, 'ca_file = "ca.pem"'),
        "cert_file": Key("", text, 'cert_file = "bridge.crt"'),
        "key_file": Key("", text, 'key_file = "bridge.key.pem"'),
    },
    "store": {
        "path": Key("", text, 'path = "bridge.sqlite3"', attr="store_path"),
        "dsn": Key("", text, 'dsn = "postgresql://bridge@db/bridge"', attr="store_dsn"),
    },
    "policy": {
        "file": Key("", text, 'file = "pool-policy.toml"', attr="policy_file"),
        "hold_ttl_s": Key(900, integer(1, 30 * 86_400)),
        "emergency_fen": Key(_EMERGENCY_FEN, _amounts, "emergency_fen = { illness = 2000000 }"),
    },
    "risk": {
        "model": Key(
            "",
            text,
            'model = "models/risk-v1.tflite"',
            "the model the bridge scores reports with (empty: the committed model)",
            attr="risk_model",
        ),
        "calibration": Key(
            "",
            text,
            'calibration = "models/risk-v1.calibration.json"',
            "per-kind thresholds on the model's q (empty: <model>.calibration.json)",
            attr="risk_calibration",
        ),
        "kinds": Key(
            {},
            _kind_overrides,
            "kinds = { phone = { step_up_q = -20, hold_q = -2 } }",
            "per-kind thresholds that replace the calibration file's",
            attr="risk_kinds",
        ),
        "freeze_after": Key(2, integer(1, 100), help="hold-level scores in a row that freeze"),
        "mismatch": Key(
            "hold",
            choice("step_up", "hold", "freeze"),
            help="the level of a report whose features or risk_pm the model contradicts",
            attr="risk_mismatch",
        ),
        "unscored": Key(
            "step_up",
            choice("allow", "step_up", "hold"),
            help="the level of an event the bridge cannot score (unknown model, no report yet)",
            attr="risk_unscored",
        ),
        "step_up": Key(
            "confirm",
            choice("confirm", "allow"),
            help="confirm: a step_up verdict holds the event's action until the user confirms "
            "on their primary device; allow: it acts at once",
            attr="risk_step_up",
        ),
        "step_up_ttl_s": Key(
            120,
            integer(5, 86_400),
            help="how long a non-emergency step-up waits for the user (an emergency waits its "
            "tier's response time less 2 s)",
        ),
    },
    SIGNALS_SECTION: keys_of(SignalPolicy),
    "ingest": {
        "batch_max": Key(256, integer(1, 10_000)),
        "batch_wait_ms": Key(2, integer(0, 1000)),
        "queue_max": Key(100_000, integer(100, 10_000_000), "queue_max = 100000"),
        "queue_max_bytes": Key(
            64 * 1024 * 1024,
            integer(1024 * 1024, 16 * 1024**3),
            "queue_max_bytes = 67108864 (64 MiB)",
            "bytes of received messages waiting for the worker; a full queue pushes back",
        ),
    },
    "rejections": {
        "per_key_per_minute": Key(
            60,
            integer(0, 1_000_000),
            attr="refusals_per_key",
            help="refusals stored and published a minute per verified key (the rest counted)",
        ),
        "per_reason_per_minute": Key(
            60,
            integer(0, 1_000_000),
            attr="refusals_per_reason",
            help="refusals stored a minute per reason code when no key verified, whole process",
        ),
        "max_age_days": Key(
            30,
            integer(0, 36_500),
            attr="rejections_days",
            help="rows older than this are pruned; 0: any age",
        ),
        "max_rows": Key(
            100_000,
            integer(0, 1_000_000_000),
            attr="rejections_max_rows",
            help="the oldest rows beyond this many are pruned; 0: no limit",
        ),
    },
    "retention": {
        "events_days": Key(
            730, integer(0, 36_500), help="accepted reports and triggers kept; 0: for ever"
        ),
        "session_events_days": Key(
            90, integer(0, 36_500), help="births and deaths kept; 0: for ever"
        ),
        "batch_rows": Key(
            1000,
            integer(10, 100_000),
            attr="prune_batch_rows",
            help="rows deleted per table and transaction when pruning",
        ),
        "interval_s": Key(
            60, integer(1, 86_400), attr="prune_interval_s", help="time between pruning rounds"
        ),
    },
    "metrics": {
        "port": Key(0, integer(0, 65535), "port = 9108 (0: off)", attr="metrics_port"),
        "host": Key("127.0.0.1", text, 'host = "0.0.0.0"', attr="metrics_host"),
    },
    "broker": {
        "dir": Key(
            "",
            text,
            'dir = "/etc/mosquitto/cloud-bridge"',
            attr="broker_dir",
            help="where passwd, acl and mosquitto.conf are rewritten on enroll, revoke and "
            "account changes; empty: the bridge does not manage the broker's files",
        ),
        "pid_file": Key(
            "",
            text,
            'pid_file = "/run/mosquitto/mosquitto.pid"',
            attr="broker_pid_file",
            help="Mosquitto's pid file: it gets SIGHUP (reload) after each rewrite; empty: none",
        ),
        "port": Key(
            1883, integer(1, 65535), attr="broker_port", help="the listener of mosquitto.conf"
        ),
    },
}


def _default(section: str, key: str) -> Any:
    return SCHEMA[section][key].value


@dataclass(frozen=True)
class BridgeConfig:
    path: Path | None
    data_dir: Path
    instance: str = _default("bridge", "id")
    fleet: str = _default("bridge", "fleet")
    mqtt_url: str = _default("mqtt", "url")
    mqtt_protocol: str = _default("mqtt", "protocol")
    share_group: str = _default("mqtt", "share_group")
    client_id: str = _default("mqtt", "client_id")
    keepalive_s: int = _default("mqtt", "keepalive_s")
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    username: str = _default("mqtt", "username")
    password_file: Path | None = None
    store_url: str = ""
    policy_file: Path | None = None
    hold_ttl_s: int = _default("policy", "hold_ttl_s")
    emergency_fen: tuple[tuple[str, int], ...] = _default("policy", "emergency_fen")
    risk_model: Path | None = None
    risk_calibration: Path | None = None
    risk_kinds: tuple[tuple[str, int, int], ...] = _default("risk", "kinds")
    freeze_after: int = _default("risk", "freeze_after")
    risk_mismatch: str = _default("risk", "mismatch")
    risk_unscored: str = _default("risk", "unscored")
    risk_step_up: str = _default("risk", "step_up")
    step_up_ttl_s: int = _default("risk", "step_up_ttl_s")
    risk_signals: SignalPolicy = field(default_factory=SignalPolicy)
    batch_max: int = _default("ingest", "batch_max")
    batch_wait_ms: int = _default("ingest", "batch_wait_ms")
    queue_max: int = _default("ingest", "queue_max")
    queue_max_bytes: int = _default("ingest", "queue_max_bytes")
    refusals_per_key: int = _default("rejections", "per_key_per_minute")
    refusals_per_reason: int = _default("rejections", "per_reason_per_minute")
    rejections_days: int = _default("rejections", "max_age_days")
    rejections_max_rows: int = _default("rejections", "max_rows")
    events_days: int = _default("retention", "events_days")
    session_events_days: int = _default("retention", "session_events_days")
    prune_batch_rows: int = _default("retention", "batch_rows")
    prune_interval_s: int = _default("retention", "interval_s")
    metrics_port: int = _default("metrics", "port")
    metrics_host: str = _default("metrics", "host")
    broker_dir: Path | None = None
    broker_pid_file: Path | None = None
    broker_port: int = _default("broker", "port")

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
    try:
        sections = read_document(doc, SCHEMA)
    except SchemaError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    values = {
        key.attr or name: sections[section][name]
        for section, keys in SCHEMA.items()
        if section != SIGNALS_SECTION  # one policy object, not loose attributes
        for name, key in keys.items()
    }
    try:
        signals = SignalPolicy(**sections[SIGNALS_SECTION])
    except SignalPolicyError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    base = path.resolve().parent if path else Path.cwd()

    def rel(value: str) -> Path | None:
        return (base / value).resolve() if value else None

    data_dir = rel(values.pop("data_dir")) or data_dir
    store_path, store_dsn = values.pop("store_path"), values.pop("store_dsn")
    if store_path and store_dsn:
        raise ConfigError(
            f"{where}: [store] give either path (SQLite) or dsn (PostgreSQL), not both"
        )
    if store_dsn and not store_dsn.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"{where}: [store] dsn must start with postgresql://")
    store_url = store_dsn or str(rel(store_path) or default_store_url(data_dir))
    for attr in (
        "ca_file",
        "cert_file",
        "key_file",
        "password_file",
        "policy_file",
        "broker_dir",
        "broker_pid_file",
        "risk_model",
        "risk_calibration",
    ):
        values[attr] = rel(values[attr])
    return BridgeConfig(
        path=path.resolve() if path else None,
        data_dir=data_dir.resolve(),
        store_url=store_url,
        risk_signals=signals,
        **values,
    )

"""The agent's TOML configuration: one schema holds every default, and a bad file fails at load
with a message that names the key and says how to fix it.

Paths in the file are relative to the file's own directory. The SHA-256 of the file's bytes is
reported in every birth certificate (`config_sha256`), so the cloud sees which config runs.
"""

from __future__ import annotations

import hashlib
import re
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agent.errors import AgentError
from protocol.messages import EMERGENCY_KINDS

DEVICE_KINDS = ("phone", "wearable", "fridge", "ev")
SOURCES = ("sim", "iio", "mpu6050", "replay")
TRIGGER_KINDS = ("restock", "health_streak", "ev_tier", "emergency")
_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
MODEL_NAME = "risk-v1.tflite"


def _default_model() -> Path:
    """The committed model: in the checkout (development, editable installs), else where the
    wheel installs it (<prefix>/share/edge-agent/models)."""
    repo = Path(__file__).resolve().parents[1] / "models" / MODEL_NAME
    if repo.exists():
        return repo
    return Path(sys.prefix) / "share" / "edge-agent" / "models" / MODEL_NAME


REPO_MODEL = _default_model()


class ConfigError(AgentError):
    """The configuration file is missing, unreadable or invalid."""


@dataclass(frozen=True)
class MqttConfig:
    url: str = "mqtt://127.0.0.1:1883"
    protocol: str = "5"
    client_id: str = ""
    username: str = ""
    password_file: Path | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive_s: int = 30
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    refused_cap_s: float = 4.0
    inflight_max: int = 64
    ack_timeout_s: float = 10.0

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"


@dataclass(frozen=True)
class Rule:
    """One trigger rule. Which parameters apply depends on `kind` (see docs/operations.md)."""

    name: str
    kind: str
    priority: int
    cooldown_s: float
    streak: int
    item: str = ""
    threshold_pct: int = 25
    full_cost_fen: int = 0
    goal_steps: int = 10_000
    streak_days: int = 7
    tiers_km: tuple[int, ...] = (500, 1500, 3000)
    emergency: str = "illness"
    fall_detection: bool = False


@dataclass(frozen=True)
class AgentConfig:
    """The whole configuration; `path` is the file it came from."""

    path: Path
    sha256: bytes
    device_id: str
    fleet: str
    kind: str
    key_file: Path
    enrollment_file: Path
    data_dir: Path
    bridge_public_key: bytes
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    report_interval_s: float = 60.0
    source: str = "sim"
    seed: int = 0
    sample_hz: int = 100
    window_samples: int = 200
    iio_device: Path = Path("/sys/bus/iio/devices/iio:device0")
    i2c_bus: int = 1
    i2c_address: int = 0x68
    replay_file: Path | None = None
    day_s: float = 86_400.0
    model_path: Path = REPO_MODEL
    outbox_max_messages: int = 50_000
    rules: tuple[Rule, ...] = ()
    status_interval_s: float = 1.0


# ---- the schema: every key, its default, and how to check it ---------------------------------


@dataclass(frozen=True)
class Key:
    """One configuration key: default (None = required), a checker, and the fix to suggest."""

    default: Any
    check: Callable[[Any], Any]
    fix: str


def _int(lo: int, hi: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if type(value) is not int or not lo <= value <= hi:
            raise ValueError(f"must be an integer from {lo} to {hi}")
        return value

    return check


def _num(lo: float, hi: float) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if type(value) not in (int, float) or not lo <= value <= hi:
            raise ValueError(f"must be a number from {lo} to {hi}")
        return float(value)

    return check


def _choice(*values: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in values:
            raise ValueError(f"must be one of {', '.join(values)}")
        return str(value)

    return check


def _ident(value: Any) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise ValueError("must be 1-64 characters of A-Z a-z 0-9 . _ -")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _path(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("must be a non-empty path string")
    return value


def _url(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    parts = urlsplit(value)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError("must look like mqtt://host:1883 or mqtts://host:8883")
    try:
        parts.port  # noqa: B018 - raises on a non-numeric port
    except ValueError as exc:
        raise ValueError("has a port that is not a number") from exc
    return value


def _hex32(value: Any) -> bytes:
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ValueError("must be 64 hex digits (the bridge's Ed25519 public key)")
    return raw


def _tiers(value: Any) -> tuple[int, ...]:
    if (
        not isinstance(value, list)
        or not value
        or any(type(v) is not int or v < 0 for v in value)
        or value != sorted(set(value))
    ):
        raise ValueError("must be a non-empty list of increasing whole kilometres")
    if len(value) > 15:
        raise ValueError("has at most 15 tiers")
    return tuple(value)


SCHEMA: dict[str, dict[str, Key]] = {
    "device": {
        "id": Key(None, _ident, 'id = "rig-01"'),
        "fleet": Key(None, _ident, 'fleet = "demo"'),
        "kind": Key(None, _choice(*DEVICE_KINDS), 'kind = "phone"'),
        "data_dir": Key("var/agent", _path, 'data_dir = "/var/lib/edge-agent"'),
        "key_file": Key("", _text, 'key_file = "device.key" (default: <data_dir>/device.key)'),
        "enrollment_file": Key(
            "", _text, 'enrollment_file = "enrollment.cbor" (default: <data_dir>/enrollment.cbor)'
        ),
    },
    "mqtt": {
        "url": Key(MqttConfig.url, _url, 'url = "mqtt://127.0.0.1:1883"'),
        "protocol": Key("5", _choice("5", "3.1.1"), 'protocol = "5"'),
        "client_id": Key("", _text, "leave it out to use the device id"),
        "username": Key("", _text, 'username = "rig-01"'),
        "password_file": Key("", _text, 'password_file = "/etc/edge-agent/mqtt.pass"'),
        "ca_file": Key("", _text, 'ca_file = "/etc/ssl/certs/broker-ca.pem"'),
        "cert_file": Key("", _text, 'cert_file = "client.crt"'),
        "key_file": Key("", _text, 'key_file = "client.key"'),
        "keepalive_s": Key(30, _int(5, 3600), "keepalive_s = 30"),
        "backoff_base_s": Key(0.5, _num(0.05, 60), "backoff_base_s = 0.5"),
        "backoff_cap_s": Key(30.0, _num(1, 3600), "backoff_cap_s = 30"),
        "refused_cap_s": Key(4.0, _num(0.1, 3600), "refused_cap_s = 4"),
        "inflight_max": Key(64, _int(1, 64), "inflight_max = 64 (at most 64: the replay window)"),
        "ack_timeout_s": Key(10.0, _num(0.5, 600), "ack_timeout_s = 10"),
    },
    "bridge": {
        "public_key": Key(None, _hex32, 'public_key = "<64 hex digits from cloud-bridge init>"'),
    },
    "report": {
        "interval_s": Key(60.0, _num(0.001, 86_400), "interval_s = 60"),
        "status_interval_s": Key(1.0, _num(0.1, 3600), "status_interval_s = 1"),
    },
    "sensors": {
        "source": Key("sim", _choice(*SOURCES), 'source = "sim"'),
        "seed": Key(-1, _int(-1, 2**63 - 1), "seed = 42 (leave out: derived from the device id)"),
        "sample_hz": Key(100, _int(10, 4000), "sample_hz = 100"),
        "window_samples": Key(200, _int(32, 8192), "window_samples = 200"),
        "iio_device": Key(
            "/sys/bus/iio/devices/iio:device0", _path, 'iio_device = "/sys/bus/iio/devices/..."'
        ),
        "i2c_bus": Key(1, _int(0, 255), "i2c_bus = 1"),
        "i2c_address": Key(0x68, _int(0x08, 0x77), "i2c_address = 0x68"),
        "replay_file": Key("", _text, 'replay_file = "session.jsonl"'),
        "day_s": Key(86_400.0, _num(0.1, 86_400), "day_s = 86400 (shorter only in simulation)"),
    },
    "model": {
        "path": Key("", _text, 'path = "/usr/share/edge-agent/risk-v1.tflite"'),
    },
    "outbox": {
        "max_messages": Key(50_000, _int(100, 10_000_000), "max_messages = 50000"),
    },
}

RULE_SCHEMA: dict[str, Key] = {
    "name": Key(None, _ident, 'name = "milk-low"'),
    "kind": Key(None, _choice(*TRIGGER_KINDS), 'kind = "restock"'),
    "priority": Key(None, _int(0, 255), "priority = 5 (emergencies get 255)"),
    "cooldown_s": Key(3600.0, _num(0, 10**8), "cooldown_s = 3600"),
    "streak": Key(1, _int(1, 10_000), "streak = 3 (consecutive samples before firing)"),
    "item": Key("", _text, 'item = "milk" (restock only)'),
    "threshold_pct": Key(25, _int(0, 100), "threshold_pct = 25"),
    "full_cost_fen": Key(0, _int(0, 10**10), "full_cost_fen = 2590 (cost of a full refill)"),
    "goal_steps": Key(10_000, _int(1, 1_000_000), "goal_steps = 10000"),
    "streak_days": Key(7, _int(1, 366), "streak_days = 7"),
    "tiers_km": Key([500, 1500, 3000], _tiers, "tiers_km = [500, 1500, 3000]"),
    "emergency": Key("illness", _choice(*sorted(EMERGENCY_KINDS)), 'emergency = "illness"'),
    "fall_detection": Key(False, lambda v: v if isinstance(v, bool) else _bad_bool(), "true"),
}


def _bad_bool() -> bool:
    raise ValueError("must be true or false")


def load(path: str | Path) -> AgentConfig:
    """Read, validate and resolve a config file; ConfigError names the key and the fix."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from exc
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return build(doc, path, hashlib.sha256(raw).digest())


def build(doc: dict[str, Any], path: Path, sha256: bytes) -> AgentConfig:
    """Validate a parsed document (also used for config updates from the cloud)."""
    where = path.name
    unknown = sorted(set(doc) - set(SCHEMA) - {"triggers"})
    if unknown:
        raise ConfigError(
            f"{where}: unknown section [{unknown[0]}]; sections: {', '.join([*SCHEMA, 'triggers'])}"
        )
    values = {name: _section(doc, name, keys, where) for name, keys in SCHEMA.items()}
    rules = _rules(doc.get("triggers", {}), where)
    base = path.resolve().parent
    dev, mq, sens = values["device"], values["mqtt"], values["sensors"]

    def rel(value: str) -> Path:
        return (base / value).resolve() if value else Path()

    data_dir = rel(dev["data_dir"])
    model = values["model"]["path"]
    seed = sens["seed"] if sens["seed"] >= 0 else _seed_from(dev["id"])
    return AgentConfig(
        path=path.resolve(),
        sha256=sha256,
        device_id=dev["id"],
        fleet=dev["fleet"],
        kind=dev["kind"],
        key_file=rel(dev["key_file"]) if dev["key_file"] else data_dir / "device.key",
        enrollment_file=(
            rel(dev["enrollment_file"]) if dev["enrollment_file"] else data_dir / "enrollment.cbor"
        ),
        data_dir=data_dir,
        bridge_public_key=values["bridge"]["public_key"],
        mqtt=MqttConfig(
            url=mq["url"],
            protocol=mq["protocol"],
            client_id=mq["client_id"] or dev["id"],
            username=mq["username"],
            password_file=rel(mq["password_file"]) if mq["password_file"] else None,
            ca_file=rel(mq["ca_file"]) if mq["ca_file"] else None,
            cert_file=rel(mq["cert_file"]) if mq["cert_file"] else None,
            key_file=rel(mq["key_file"]) if mq["key_file"] else None,
            keepalive_s=mq["keepalive_s"],
            backoff_base_s=mq["backoff_base_s"],
            backoff_cap_s=mq["backoff_cap_s"],
            refused_cap_s=mq["refused_cap_s"],
            inflight_max=mq["inflight_max"],
            ack_timeout_s=mq["ack_timeout_s"],
        ),
        report_interval_s=values["report"]["interval_s"],
        status_interval_s=values["report"]["status_interval_s"],
        source=sens["source"],
        seed=seed,
        sample_hz=sens["sample_hz"],
        window_samples=sens["window_samples"],
        iio_device=Path(sens["iio_device"]),
        i2c_bus=sens["i2c_bus"],
        i2c_address=sens["i2c_address"],
        replay_file=rel(sens["replay_file"]) if sens["replay_file"] else None,
        day_s=sens["day_s"],
        model_path=rel(model) if model else REPO_MODEL,
        outbox_max_messages=values["outbox"]["max_messages"],
        rules=rules,
    )


def _section(doc: dict[str, Any], name: str, keys: dict[str, Key], where: str) -> dict[str, Any]:
    table = doc.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [{name}] must be a table")
    unknown = sorted(set(table) - set(keys))
    if unknown:
        raise ConfigError(f"{where}: [{name}] {unknown[0]}: unknown key; known: {', '.join(keys)}")
    out: dict[str, Any] = {}
    for key, spec in keys.items():
        if key not in table:
            if spec.default is None:
                raise ConfigError(f"{where}: [{name}] {key} is required; add: {spec.fix}")
            out[key] = spec.check(spec.default)
            continue
        try:
            out[key] = spec.check(table[key])
        except ValueError as exc:
            raise ConfigError(
                f"{where}: [{name}] {key} = {table[key]!r} {exc}; for example: {spec.fix}"
            ) from None
    return out


def _rules(table: Any, where: str) -> tuple[Rule, ...]:
    if not isinstance(table, dict) or set(table) - {"rule"}:
        raise ConfigError(f"{where}: [triggers] holds only [[triggers.rule]] tables")
    rules = table.get("rule", [])
    if not isinstance(rules, list):
        raise ConfigError(f"{where}: write trigger rules as [[triggers.rule]] tables")
    out: list[Rule] = []
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict):
            raise ConfigError(f"{where}: [[triggers.rule]] #{i + 1} must be a table")
        name = rule.get("name", f"#{i + 1}")
        values = _section(
            {f"[triggers.rule] {name}": rule}, f"[triggers.rule] {name}", RULE_SCHEMA, where
        )
        label = f"[[triggers.rule]] {values['name']}"
        if values["kind"] == "restock" and not values["item"]:
            raise ConfigError(f'{where}: {label}: a restock rule needs item = "milk"')
        if values["name"] in {r.name for r in out}:
            raise ConfigError(f"{where}: {label}: rule names must be unique")
        out.append(Rule(**{k: v for k, v in values.items()}))
    return tuple(out)


def _seed_from(device_id: str) -> int:
    return int.from_bytes(hashlib.sha256(device_id.encode()).digest()[:8], "big") >> 1

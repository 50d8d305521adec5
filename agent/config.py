"""The agent's TOML configuration: one schema holds every default, and a bad file fails at load
with a message that names the key and says how to fix it.

Each key is one confschema `Key` in SCHEMA or RULE_SCHEMA (default, check, example); the
dataclasses below read their defaults from it, so a default is written once.

Paths in the file are relative to the file's own directory. The SHA-256 of the file's bytes is
reported in every birth certificate (`config_sha256`), so the cloud sees which config runs.
"""

from __future__ import annotations

import hashlib
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agent.errors import AgentError
from agent.window import STATE_TIMEOUT_MS
from confschema import (
    REQUIRED,
    Invalid,
    Key,
    Schema,
    SchemaError,
    Section,
    boolean,
    choice,
    integer,
    matching,
    mqtt_url,
    number,
    path,
    read_document,
    read_section,
    text,
)
from protocol.messages import EMERGENCY_KINDS
from protocol.names import AGENT_KINDS, ID_PATTERN, ID_RULE, RESERVED_DEVICE_IDS

DEVICE_KINDS = AGENT_KINDS  # the kinds agent.toml accepts (mcu is the firmware's)
SOURCES = ("sim", "iio", "mpu6050", "replay")
SCENES = ("obd2", "loadcell", "activity")
"""Scene readers polled beside the IMU source (agent.sensors.scenes)."""
SHELF_ITEM_MAX = 56
"""A shelf's item names telemetry keys, which are ids (64 characters at most) too; the longest
is `removed.<item>`, so an item has at most 64 - len("removed.") = 56 characters."""
TRIGGER_KINDS = ("restock", "health_streak", "ev_tier", "emergency")
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


# ---- the schema: every key, its default, and how to check it ---------------------------------

_ident = matching(ID_PATTERN, ID_RULE)


def _device_id(value: Any) -> str:
    if _ident(value) in RESERVED_DEVICE_IDS:
        raise Invalid(
            f"is reserved for the cloud's topics ({', '.join(sorted(RESERVED_DEVICE_IDS))})"
        )
    return str(value)


def _hex32(value: Any) -> bytes:
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise Invalid("must be 64 hex digits (the bridge's Ed25519 public key)")
    return raw


def _tiers(value: Any) -> tuple[int, ...]:
    if (
        not isinstance(value, list)
        or not value
        or any(type(v) is not int or v < 0 for v in value)
        or value != sorted(set(value))
    ):
        raise Invalid("must be a non-empty list of increasing whole kilometres")
    if len(value) > 15:
        raise Invalid("has at most 15 tiers")
    return tuple(value)


def _scenes(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or any(v not in SCENES for v in value):
        raise Invalid(f"must be a list of scene readers from {', '.join(SCENES)}")
    if len(set(value)) != len(value):
        raise Invalid("names each scene reader once")
    return tuple(value)


@dataclass(frozen=True)
class Shelf:
    """A fridge shelf on a load cell: which item it holds, the weight of one, how many fill it,
    and the HX711 channel (and IIO device, if not `loadcell_device`) it is wired to."""

    item: str
    unit_g: float
    full_count: int
    channel: int = 0
    device: Path | None = None


def _shelves(value: Any) -> tuple[Shelf, ...]:
    fix = 'for example: shelves = [{item = "milk", unit_g = 1030, full_count = 4}]'
    if not isinstance(value, list):
        raise Invalid("must be a list of shelf tables", fix=fix)
    out = []
    for i, shelf in enumerate(value):
        if not isinstance(shelf, dict) or set(shelf) - {
            "item",
            "unit_g",
            "full_count",
            "channel",
            "device",
        }:
            raise Invalid(
                f"shelf #{i + 1} must be a table of item, unit_g, full_count, channel, device",
                fix=fix,
            )
        try:
            item = _ident(shelf.get("item"))
            if len(item) > SHELF_ITEM_MAX:  # telemetry keys `removed.<item>` are ids too
                raise Invalid(f"item {item!r} must be at most {SHELF_ITEM_MAX} characters")
            unit_g = number(1, 100_000)(shelf.get("unit_g"))
            full = integer(1, 1000)(shelf.get("full_count"))
            channel = integer(0, 1)(shelf.get("channel", 0))
            device = path(shelf["device"]) if "device" in shelf else None
        except Invalid as exc:
            raise Invalid(f"shelf #{i + 1}: {exc}", fix=fix) from None
        out.append(Shelf(item, unit_g, full, channel, Path(device) if device else None))
    if len({s.item for s in out}) != len(out):
        raise Invalid("names each shelf's item once", fix=fix)
    return tuple(out)


SCHEMA: Schema = {
    "device": {
        "id": Key(REQUIRED, _device_id, 'id = "rig-01"'),
        "fleet": Key(REQUIRED, _ident, 'fleet = "demo"'),
        "kind": Key(REQUIRED, choice(*DEVICE_KINDS), 'kind = "phone"'),
        "data_dir": Key("var/agent", path, 'data_dir = "/var/lib/edge-agent"'),
        "key_file": Key("", text, 'key_file = "device.key" (default: <data_dir>/device.key)'),
        "enrollment_file": Key(
            "", text, 'enrollment_file = "enrollment.cbor" (default: <data_dir>/enrollment.cbor)'
        ),
    },
    "mqtt": {
        "url": Key("mqtt://127.0.0.1:1883", mqtt_url),
        "protocol": Key("5", choice("5", "3.1.1")),
        "client_id": Key("", text, "leave it out to use the device id"),
        "username": Key("", text, 'username = "rig-01"'),
        "password_file": Key("", text, 'password_file = "/etc/edge-agent/mqtt.pass"'),
        "ca_file": Key("", text, 'ca_file = "/etc/ssl/certs/broker-ca.pem"'),
        "cert_file": Key("", text, 'cert_file = "client.crt"'),
        "key_file": Key("", text, 'key_file = "client.key"'),
        "keepalive_s": Key(30, integer(5, 3600)),
        "backoff_base_s": Key(0.5, number(0.05, 60)),
        "backoff_cap_s": Key(30.0, number(1, 3600), "backoff_cap_s = 30"),
        "refused_cap_s": Key(4.0, number(0.1, 3600), "refused_cap_s = 4"),
        "inflight_max": Key(
            64, integer(1, 64), "inflight_max = 64 (at most 64: the replay window)"
        ),
        "ack_timeout_s": Key(10.0, number(0.5, 600), "ack_timeout_s = 10"),
        # Without a valid bridge state for this long, drain paced by the bridge's acks
        # (agent.window, "Draining on acks").
        "bridge_state_timeout_s": Key(
            STATE_TIMEOUT_MS / 1000, number(1, 86_400), "bridge_state_timeout_s = 60"
        ),
    },
    "bridge": {
        "public_key": Key(
            REQUIRED, _hex32, 'public_key = "<64 hex digits from cloud-bridge init>"'
        ),
    },
    "report": {
        "interval_s": Key(60.0, number(0.001, 86_400), "interval_s = 60"),
        "status_interval_s": Key(1.0, number(0.1, 3600), "status_interval_s = 1"),
    },
    "sensors": {
        "source": Key("sim", choice(*SOURCES)),
        "seed": Key(
            -1, integer(-1, 2**63 - 1), "seed = 42 (leave out: derived from the device id)"
        ),
        "sample_hz": Key(100, integer(10, 4000)),
        "window_samples": Key(200, integer(32, 8192)),
        "iio_device": Key(
            "/sys/bus/iio/devices/iio:device0", path, 'iio_device = "/sys/bus/iio/devices/..."'
        ),
        "i2c_bus": Key(1, integer(0, 255)),
        "i2c_address": Key(0x68, integer(0x08, 0x77), "i2c_address = 0x68"),
        "replay_file": Key("", text, 'replay_file = "session.jsonl"'),
        "day_s": Key(86_400.0, number(0.1, 86_400), "day_s = 86400 (shorter only in simulation)"),
        "scenes": Key([], _scenes, 'scenes = ["obd2"] (any of obd2, loadcell, activity)'),
        "obd_port": Key("/dev/ttyUSB0", path, 'obd_port = "/dev/serial/by-id/usb-...-port0"'),
        "obd_baud": Key(38400, integer(0, 2_000_000), "obd_baud = 38400 (0: try the usual rates)"),
        "loadcell_device": Key(
            "/sys/bus/iio/devices/iio:device0", path, 'loadcell_device = "/sys/bus/iio/devices/..."'
        ),
        "activity_hz": Key(50, integer(10, 400), "activity_hz = 50 (the step and fall stream)"),
        "shelves": Key([], _shelves, 'shelves = [{item = "milk", unit_g = 1030, full_count = 4}]'),
        "impostor": Key(
            False,
            boolean,
            "impostor = true (simulation only)",
            "the simulated user is not the owner: a step-up is declined (source sim only)",
        ),
        "impostor_confirms": Key(
            False,
            boolean,
            "impostor_confirms = true (simulation only)",
            "the impostor presses confirm on a step-up (a thief with the phone), swiping like "
            "themself, not the owner (source sim, impostor = true)",
        ),
    },
    "model": {
        "path": Key("", text, 'path = "/usr/share/edge-agent/risk-v1.tflite"'),
    },
    "outbox": {
        "max_messages": Key(50_000, integer(100, 10_000_000), "max_messages = 50000"),
    },
    # Self-update (agent.update): the download's retry budget, and the trial of a new release:
    # rolled back after this many starts, or when no report of it was acked within trial_s.
    "update": {
        "retries": Key(5, integer(1, 100), "retries = 5"),
        "max_starts": Key(3, integer(1, 20), "max_starts = 3"),
        "trial_s": Key(600.0, number(5, 86_400), "trial_s = 600"),
    },
}

RULE_SCHEMA: Section = {
    "name": Key(REQUIRED, _ident, 'name = "milk-low"'),
    "kind": Key(REQUIRED, choice(*TRIGGER_KINDS), 'kind = "restock"'),
    "priority": Key(REQUIRED, integer(0, 255), "priority = 5 (emergencies get 255)"),
    "cooldown_s": Key(3600.0, number(0, 10**8), "cooldown_s = 3600"),
    "streak": Key(1, integer(1, 10_000), "streak = 3 (consecutive samples before firing)"),
    "item": Key("", text, 'item = "milk" (restock only)'),
    "threshold_pct": Key(25, integer(0, 100)),
    "full_cost_fen": Key(0, integer(0, 10**10), "full_cost_fen = 2590 (cost of a full refill)"),
    "goal_steps": Key(10_000, integer(1, 1_000_000), "goal_steps = 10000"),
    "streak_days": Key(7, integer(1, 366)),
    "tiers_km": Key([500, 1500, 3000], _tiers),
    "emergency": Key("illness", choice(*sorted(EMERGENCY_KINDS))),
    "fall_detection": Key(False, boolean),
}


def _default(section: str, key: str) -> Any:
    return SCHEMA[section][key].value


@dataclass(frozen=True)
class MqttConfig:
    url: str = _default("mqtt", "url")
    protocol: str = _default("mqtt", "protocol")
    client_id: str = ""
    username: str = ""
    password_file: Path | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive_s: int = _default("mqtt", "keepalive_s")
    backoff_base_s: float = _default("mqtt", "backoff_base_s")
    backoff_cap_s: float = _default("mqtt", "backoff_cap_s")
    refused_cap_s: float = _default("mqtt", "refused_cap_s")
    inflight_max: int = _default("mqtt", "inflight_max")
    ack_timeout_s: float = _default("mqtt", "ack_timeout_s")
    bridge_state_timeout_s: float = _default("mqtt", "bridge_state_timeout_s")

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
    item: str = RULE_SCHEMA["item"].value
    threshold_pct: int = RULE_SCHEMA["threshold_pct"].value
    full_cost_fen: int = RULE_SCHEMA["full_cost_fen"].value
    goal_steps: int = RULE_SCHEMA["goal_steps"].value
    streak_days: int = RULE_SCHEMA["streak_days"].value
    tiers_km: tuple[int, ...] = RULE_SCHEMA["tiers_km"].value
    emergency: str = RULE_SCHEMA["emergency"].value
    fall_detection: bool = RULE_SCHEMA["fall_detection"].value


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
    report_interval_s: float = _default("report", "interval_s")
    source: str = _default("sensors", "source")
    seed: int = 0  # resolved: the file's default (-1) means "derive from the device id"
    sample_hz: int = _default("sensors", "sample_hz")
    window_samples: int = _default("sensors", "window_samples")
    iio_device: Path = Path(_default("sensors", "iio_device"))
    i2c_bus: int = _default("sensors", "i2c_bus")
    i2c_address: int = _default("sensors", "i2c_address")
    replay_file: Path | None = None
    day_s: float = _default("sensors", "day_s")
    scenes: tuple[str, ...] = ()
    obd_port: Path = Path(_default("sensors", "obd_port"))
    obd_baud: int = _default("sensors", "obd_baud")
    loadcell_device: Path = Path(_default("sensors", "loadcell_device"))
    shelves: tuple[Shelf, ...] = ()
    activity_hz: int = _default("sensors", "activity_hz")
    impostor: bool = _default("sensors", "impostor")
    impostor_confirms: bool = _default("sensors", "impostor_confirms")
    model_path: Path = REPO_MODEL
    outbox_max_messages: int = _default("outbox", "max_messages")
    update_retries: int = _default("update", "retries")
    update_max_starts: int = _default("update", "max_starts")
    update_trial_s: float = _default("update", "trial_s")
    rules: tuple[Rule, ...] = ()
    status_interval_s: float = _default("report", "status_interval_s")


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
    try:
        values = read_document(doc, SCHEMA, other=("triggers",))
    except SchemaError as exc:
        raise ConfigError(f"{where}: {exc}") from None
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
            bridge_state_timeout_s=mq["bridge_state_timeout_s"],
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
        scenes=sens["scenes"],
        obd_port=Path(sens["obd_port"]),
        obd_baud=sens["obd_baud"],
        loadcell_device=Path(sens["loadcell_device"]),
        shelves=sens["shelves"],
        activity_hz=sens["activity_hz"],
        impostor=sens["impostor"],
        impostor_confirms=sens["impostor_confirms"],
        model_path=rel(model) if model else REPO_MODEL,
        outbox_max_messages=values["outbox"]["max_messages"],
        update_retries=values["update"]["retries"],
        update_max_starts=values["update"]["max_starts"],
        update_trial_s=values["update"]["trial_s"],
        rules=rules,
    )


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
        label = f"[[triggers.rule]] {rule.get('name', f'#{i + 1}')}"
        try:
            values = read_section(rule, RULE_SCHEMA, "triggers.rule", label)
        except SchemaError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        label = f"[[triggers.rule]] {values['name']}"
        if values["kind"] == "restock" and not values["item"]:
            raise ConfigError(f'{where}: {label}: a restock rule needs item = "milk"')
        if values["name"] in {r.name for r in out}:
            raise ConfigError(f"{where}: {label}: rule names must be unique")
        out.append(Rule(**values))
    return tuple(out)


def _seed_from(device_id: str) -> int:
    return int.from_bytes(hashlib.sha256(device_id.encode()).digest()[:8], "big") >> 1

"""The device's JSON configuration on flash (config.json, written by `edge-agent provision
--target esp32`), with the remote overrides of config commands (overrides.json) on top.

Every default lives in SCHEMA; a bad file fails at load with ConfigError naming the key, the
value and a fix, as the Linux agent's agent/config.py does.

    cfg = load(storage)              a dict of dicts: cfg["mqtt"]["port"] ...
    cfg = with_overrides(cfg, {"report.interval_s": 5})     validated copy (ConfigError)
"""

import json

FILE = "config.json"
OVERRIDES = "overrides.json"
REQUIRED = None

# section -> key -> (default or REQUIRED, kind, low, high, example)
SCHEMA = {  # type: dict
    "device": {
        "id": (REQUIRED, "id", 1, 64, '"esp32-1"'),
        "fleet": (REQUIRED, "id", 1, 64, '"home"'),
        "kind": ("mcu", "str", 1, 16, '"mcu"'),
    },
    "bridge": {"public_key": (REQUIRED, "hex32", 0, 0, '"<64 hex digits>"')},
    "mqtt": {
        "host": (REQUIRED, "str", 1, 253, '"192.168.1.10"'),
        "port": (1883, "int", 1, 65535, "1883"),
        "username": ("", "str", 0, 64, '"esp32-1" (the device id; empty: an open broker)'),
        "password": ("", "str", 0, 128, '"<the secret of edge-agent provision>"'),
        "keepalive_s": (30, "int", 5, 3600, "30"),
        "ack_timeout_s": (10, "int", 1, 600, "10"),
        "inflight_max": (16, "int", 1, 64, "16"),
        "backoff_base_ms": (500, "int", 10, 60000, "500"),
        "backoff_cap_ms": (30000, "int", 100, 600000, "30000"),
    },
    "wifi": {
        "ssid": ("", "str", 0, 32, '"my-network"'),
        "password": ("", "str", 0, 64, '"secret"'),
    },
    "report": {"interval_s": (60, "int", 1, 86400, "60")},
    "imu": {
        "i2c_address": (0x68, "int", 0x68, 0x69, "104"),
        "sda": (21, "int", 0, 48, "21"),
        "scl": (22, "int", 0, 48, "22"),
        "sample_hz": (1000, "int", 4, 1000, "1000"),
        "window_samples": (64, "pow2", 64, 1024, "64"),
        "sim_seed": (-1, "int", -1, 1 << 30, "-1 (a real MPU-6050)"),
    },
    "outbox": {"max_messages": (64, "int", 8, 512, "64")},
    "emergency": {
        "button_pin": (-1, "int", -1, 48, "0 (the BOOT button), -1 for none"),
        "emergency": ("illness", "choice", 0, 0, '"illness"'),
        "priority": (255, "int", 0, 255, "255"),
        "cooldown_s": (10, "int", 0, 86400, "10"),
    },
    "claim": {  # enrollment by claim (claim.py): used once, when device.key is missing
        "token": ("", "str", 0, 1024, '"<hex of a token of cloud-bridge claims issue>"'),
    },
    "baseline": {},  # the enrolled fingerprint: keys "0".."23", signed 64-bit integers
}
EMERGENCIES = ("illness", "disaster", "education")
REMOTE_KEYS = ("report.interval_s", "outbox.max_messages")
"""What a config command may change (agent/commands.py REMOTE_KEYS, the part the MCU has)."""

_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"


class ConfigError(Exception):
    """A missing or invalid configuration value; the message says how to fix it."""


def _fail(section, key, value, rule, example):
    raise ConfigError(
        "%s: %s.%s = %r %s; for example: %s = %s" % (FILE, section, key, value, rule, key, example)
    )


def _check(section, key, value, spec):
    _default, kind, lo, hi, example = spec
    if kind in ("int", "pow2"):
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            _fail(section, key, value, "must be an integer from %d to %d" % (lo, hi), example)
        if kind == "pow2" and value & (value - 1):
            _fail(section, key, value, "must be a power of two", example)
    elif kind == "hex32":
        ok = isinstance(value, str) and len(value) == 64
        if ok:
            try:
                bytes.fromhex(value)
            except ValueError:
                ok = False
        if not ok:
            _fail(section, key, value, "must be 64 hex digits (a 32-byte key)", example)
    elif kind == "choice":
        if value not in EMERGENCIES:
            _fail(section, key, value, "must be one of %s" % ", ".join(EMERGENCIES), example)
    else:
        if not isinstance(value, str) or not lo <= len(value) <= hi:
            _fail(section, key, value, "must be text of %d to %d characters" % (lo, hi), example)
        if kind == "id" and any(c not in _ID_CHARS for c in value):
            _fail(section, key, value, "may hold only A-Z a-z 0-9 . _ -", example)
    return value


def build(doc):
    """The validated configuration (defaults filled in) of a parsed document."""
    if not isinstance(doc, dict):
        raise ConfigError("%s must hold a JSON object" % FILE)
    out = {}
    for section, keys in SCHEMA.items():
        given = doc.get(section, {})
        if not isinstance(given, dict):
            raise ConfigError("%s: %s must be an object" % (FILE, section))
        if section == "baseline":
            out[section] = _baseline(given)
            continue
        for key in given:
            if key not in keys:
                raise ConfigError(
                    "%s: %s.%s is not a setting; known: %s"
                    % (FILE, section, key, ", ".join(sorted(keys)))
                )
        values = {}
        for key, spec in keys.items():
            if key in given:
                values[key] = _check(section, key, given[key], spec)
            elif spec[0] is REQUIRED:
                raise ConfigError(
                    "%s: %s.%s is missing; for example: %s = %s" % (FILE, section, key, key, spec[4])
                )
            else:
                values[key] = spec[0]
        out[section] = values
    return out


def _baseline(given):
    if len(given) != 24:
        raise ConfigError(
            "%s: baseline must hold the 24 fields of the enrolled fingerprint ('0'..'23'); "
            "provision again with edge-agent provision --target esp32" % FILE
        )
    fields = [0] * 24
    for key, value in given.items():
        try:
            i = int(key)
        except ValueError:
            i = -1
        if not 0 <= i < 24 or not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError("%s: baseline.%s = %r must be an integer field 0..23" % (
                FILE, key, value))
        fields[i] = value
    return fields


def with_overrides(cfg, overrides):
    """`cfg` with dotted-key overrides applied, validated like the file."""
    out = {}
    for section, values in cfg.items():
        out[section] = values if section == "baseline" else dict(values)
    for dotted, value in overrides.items():
        if dotted not in REMOTE_KEYS:
            raise ConfigError("%s cannot be set remotely" % dotted)
        section, key = dotted.split(".")
        out[section][key] = _check(section, key, value, SCHEMA[section][key])
    return out


def load(storage):
    """config.json with overrides.json applied; ConfigError if either is bad."""
    raw = storage.read(FILE)
    if raw is None:
        raise ConfigError("%s is missing; provision the device (tools/flash pushes it)" % FILE)
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise ConfigError("%s is not valid JSON: %s" % (FILE, exc))
    cfg = build(doc)
    return with_overrides(cfg, load_overrides(storage))


def load_overrides(storage):
    raw = storage.read(OVERRIDES)
    if raw is None:
        return {}
    try:
        doc = json.loads(raw)
    except ValueError:
        return {}  # torn write: the file is replaced by rename, so only a foreign file is bad
    return doc if isinstance(doc, dict) else {}


def save_overrides(storage, overrides):
    storage.write(OVERRIDES + ".tmp", json.dumps(overrides))
    storage.rename(OVERRIDES + ".tmp", OVERRIDES)
